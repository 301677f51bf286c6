"""The line pace, the last gate before a send: a line's late texts are spaced as they really go."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from sqlmodel import select

from tests.pipeline.conftest import LINE, OTHER, set_rates
from tests.pipeline.steps import TOKEN, aware, part_of
from worker.infra.ratelimit import Going, LineRateLimiter
from worker.infra.runtime import Runtime
from worker.pipeline.send import call
from worker.pipeline.send.call import call_all
from worker.pipeline.send.claim import claim_all
from worker.pipeline.send.pace import LONGEST_WAIT_S, LinePace
from worker.pipeline.send.values import Claimed
from worker.producer.enqueue import TextRequest, enqueue_many
from worker.store.db import transaction
from worker.store.models import Line, Part, utcnow
from worker.store.schedule import lease
from worker.zipwhip.errors import ProviderError
from worker.zipwhip.results import SendToken, SmsReceipt


@pytest.fixture
def limiter(client: redis.Redis) -> LineRateLimiter:
    return LineRateLimiter(client)


def test_a_lines_sends_go_one_gap_apart(limiter: LineRateLimiter) -> None:
    waits = limiter.pace([Going(1, 0.5)] * 3, longest_wait_s=10)
    assert waits == pytest.approx([0.0, 0.5, 1.0], abs=0.01)


def test_a_text_past_the_longest_wait_takes_no_place(limiter: LineRateLimiter) -> None:
    assert limiter.pace([Going(1, 1.0)] * 3, longest_wait_s=1.5)[2] == pytest.approx(2.0, abs=0.01)
    [after] = limiter.pace([Going(1, 1.0)], longest_wait_s=10)
    assert 1.5 < after <= 2.0  # behind the second text (2 s), not behind the third that was handed back


def test_lines_keep_their_own_pace_and_unlimited_ones_never_wait(limiter: LineRateLimiter) -> None:
    waits = limiter.pace([Going(1, 1.0), Going(2, 1.0), Going(1, 1.0), Going(3, 0.0), Going(3, 0.0)], 10)
    assert waits == pytest.approx([0.0, 0.0, 1.0, 0.0, 0.0], abs=0.01)


def _released(runtime: Runtime, count: int) -> list[int]:
    """`count` texts to different recipients on the test line, leased to a send task."""
    requests = [TextRequest(LINE, f"+1206555{n:04d}", f"text {n}") for n in range(count)]
    ids = enqueue_many(runtime, requests)
    with transaction(runtime.engine) as session:
        part_ids = session.exec(select(Part.id).where(Part.message_id.in_(ids))).all()  # type: ignore[attr-defined]
        assert len(lease(session, [p or 0 for p in part_ids], utcnow(), 60.0)) == count
    return ids


class FixedPace:
    """A pace that answers the same wait for every text, and remembers what it was asked."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        self.asked: list[tuple[Line, Part]] = []

    def waits(self, going: Any) -> list[float]:
        self.asked += going
        return [self.wait] * len(going)


def test_a_text_far_behind_its_lines_pace_is_handed_back(runtime: Runtime) -> None:
    [message_id] = _released(runtime, 1)
    now = utcnow()
    with transaction(runtime.engine) as session:
        claims, outcomes = claim_all(session, [message_id], TOKEN, "worker-1", now, FixedPace(5.0))
    assert claims == []
    assert [(o.kind, o.summary.split(": ", 1)[1]) for o in outcomes] == [
        ("waiting", "waiting for its line's pace")
    ]
    part = part_of(runtime, message_id)
    assert part.state == "queued" and part.dispatched_at is None
    assert aware(part.due_at) == now + timedelta(seconds=5.0)  # due again when the pace allows
    assert part.releases == 0  # that release was not its fault: it never counts towards giving up


def test_a_text_a_little_behind_waits_in_its_claim(runtime: Runtime) -> None:
    [message_id] = _released(runtime, 1)
    before = time.monotonic()
    with transaction(runtime.engine) as session:
        [claimed], _ = claim_all(session, [message_id], TOKEN, "worker-1", utcnow(), FixedPace(0.6))
    assert claimed.not_before >= before + 0.6
    assert part_of(runtime, message_id).state == "sending"


def test_claims_take_their_places_in_the_real_pace(runtime: Runtime) -> None:
    set_rates(runtime, 1.5)
    first, second, third = _released(runtime, 3)
    claims = []
    asked_at = []
    for message_id in (first, second, third):  # three tasks, one after the other, all late
        asked_at.append(time.monotonic())
        with transaction(runtime.engine) as session:
            got, outcomes = claim_all(session, [message_id], TOKEN, "worker-1", utcnow(), LinePace(runtime))
        claims += got
    assert len(claims) == 2 and outcomes[0].kind == "waiting"  # the third is 1.33 s away: handed back
    assert claims[0].not_before == 0.0  # the first goes at once
    assert 0.3 < claims[1].not_before - asked_at[1] <= 1 / 1.5 + 0.01  # the second a gap after it
    assert LONGEST_WAIT_S < 2 / 1.5  # what made the third wait too long


def test_the_other_line_is_not_held_up(runtime: Runtime) -> None:
    set_rates(runtime, 1.0)
    ids = _released(runtime, 1) + enqueue_many(runtime, [TextRequest(OTHER, "+12065559999", "hi")])
    with transaction(runtime.engine) as session:
        lease(session, [part_of(runtime, ids[1]).id or 0], utcnow(), 60.0)
        claims, outcomes = claim_all(session, ids, TOKEN, "worker-1", utcnow(), LinePace(runtime))
    assert len(claims) == 2 and not outcomes
    assert max(c.not_before for c in claims) == 0.0  # each line's first send goes at once


class TimedClient:
    """A provider client that notes when each text was sent."""

    def __init__(self) -> None:
        self.sent_at: dict[str, float] = {}

    def send_sms(self, session_key: str, to: str, body: str) -> SmsReceipt:
        self.sent_at[body] = time.monotonic()
        return SmsReceipt(f"root-{body}", None, (SendToken(to, "device", None, f"id-{body}"),))


def test_a_text_goes_no_earlier_than_its_place(client: redis.Redis) -> None:
    client_ = TimedClient()
    with ThreadPoolExecutor(4) as pool:
        runtime: Any = SimpleNamespace(client=client_, provider_pool=pool, redis=client)
        start = time.monotonic()
        texts = [_claim("now", 0.0), _claim("soon", start + 0.3), _claim("later", start + 0.6)]
        answers = call_all(runtime, texts)
    assert [a.provider_id for a in answers] == ["id-now", "id-soon", "id-later"]  # type: ignore[union-attr]
    assert client_.sent_at["soon"] >= start + 0.3
    assert client_.sent_at["later"] >= start + 0.6


def _claim(body: str, not_before: float) -> Claimed:
    return Claimed(1, 1, body, "sms", "+12065550100", body, "k", (), not_before=not_before)


def test_a_worker_declared_dead_while_a_text_waited_for_its_place_does_not_send_it(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_ = TimedClient()
    monkeypatch.setattr(call, "may_send", lambda: False)  # its alive key lapsed during the wait
    with ThreadPoolExecutor(2) as pool:
        runtime: Any = SimpleNamespace(client=client_, provider_pool=pool, redis=client)
        [answer] = call_all(runtime, [_claim("waited", time.monotonic() + 0.2)])
    assert client_.sent_at == {}  # nothing went to the provider
    assert isinstance(answer, ProviderError) and "not known to be alive" in answer.description
