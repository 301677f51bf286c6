"""One line poll on both databases: a page of message/list answers for every text of ours in flight
that it shows, due or not, in two transactions (what is due, then the statuses); a due text the
pages missed is asked for with message/get. A fake provider stands at the boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, event

from tests.pipeline.conftest import LINE
from tests.pipeline.steps import answered, aware, claimed, message_of, part_of
from worker.infra.runtime import Runtime
from worker.pipeline.send.values import Accepted
from worker.pipeline.track import poll_line_step
from worker.producer.enqueue import TextRequest, enqueue_many
from worker.store.db import transaction
from worker.store.models import Part, utcnow
from worker.zipwhip.errors import Classification, ErrorKind, ProviderError
from worker.zipwhip.results import MessagePage, ProviderMessage

DELIVERED_TO_CARRIER = 4  # delivery status table: success, final


@dataclass
class Provider:
    """A line's newest-first list holding the listed texts as delivered; message/get for the rest."""

    listed: list[str]
    gets: list[str] = field(default_factory=list)

    def list_messages(self, session: str, start: int = 0, limit: int = 20) -> MessagePage:
        now = utcnow()
        messages = tuple(
            ProviderMessage(id=i, date_created=now, status_code=DELIVERED_TO_CARRIER) for i in self.listed
        )[start : start + limit]
        return MessagePage(total=len(self.listed), size=len(messages), messages=messages)

    def get_message(self, session: str, message_id: str) -> ProviderMessage:
        self.gets.append(message_id)
        return ProviderMessage(id=message_id, date_created=utcnow(), status_code=DELIVERED_TO_CARRIER)


class Commits:
    """Counts the transactions an engine commits."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.count = engine, 0

    def __enter__(self) -> Commits:
        event.listen(self.engine, "commit", self._seen)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "commit", self._seen)

    def _seen(self, *_: object) -> None:
        self.count += 1


def _sent(runtime: Runtime, polls_in_minutes: tuple[int, ...]) -> list[int]:
    """Texts the provider accepted as p0, p1, ..., each next polled this many minutes from now."""
    count = len(polls_in_minutes)
    ids = enqueue_many(runtime, [TextRequest(LINE, f"+1206555{n:04d}", f"poll {n}") for n in range(count)])
    for n, message_id in enumerate(ids):
        now = utcnow()
        answered(runtime, claimed(runtime, message_id, now), Accepted(f"p{n}", None), now)
    part_ids = [part_of(runtime, message_id).id for message_id in ids]
    with transaction(runtime.engine) as session:
        for part_id, minutes in zip(part_ids, polls_in_minutes, strict=True):
            part = session.get(Part, part_id)
            assert part is not None
            part.next_poll_at = utcnow() + timedelta(minutes=minutes)
    return ids


def _poller(runtime: Runtime, provider: Provider) -> Any:
    """The runtime with the fake provider as its client (a poll's calls run on this thread)."""
    return SimpleNamespace(
        engine=runtime.engine,
        client=provider,
        settings=runtime.settings,
        polls=runtime.polls,
        provider_pool=SimpleNamespace(map=map),
    )


def test_one_poll_records_every_listed_text_of_ours_and_gets_the_missing_due_one_in_two_transactions(
    runtime: Runtime,
) -> None:
    ids = _sent(runtime, (-1, 5, 5, -1))  # the first and the last are due for a poll
    provider = Provider(listed=["p2", "p1", "p0"])  # p3 (due) is not on the pages
    line_id = message_of(runtime, ids[0]).line_id
    with Commits(runtime.engine) as commits:
        summary = poll_line_step(_poller(runtime, provider), line_id)
    assert commits.count == 2, summary
    assert provider.gets == ["p3"]
    assert [message_of(runtime, i).state.value for i in ids] == ["delivered"] * 4
    assert "2 due" in summary and "1 by message/get" in summary and "4 now final" in summary


@dataclass
class FailingList(Provider):
    """message/list fails (a provider that is saturated or down); message/get would answer."""

    def list_messages(self, session: str, start: int = 0, limit: int = 20) -> MessagePage:
        raise ProviderError(
            ErrorKind.TIMED_OUT, Classification.RETRYABLE, "no answer before the read timeout"
        )


def test_a_failed_message_list_stands_for_every_due_text_and_costs_no_message_get(runtime: Runtime) -> None:
    ids = _sent(runtime, (-1, -1, -1))
    provider = FailingList(listed=[])
    started = utcnow()
    summary = poll_line_step(_poller(runtime, provider), message_of(runtime, ids[0]).line_id)
    assert provider.gets == [], summary  # not 3 (up to 500 a poll) calls to a provider already failing
    assert "0 by message/get" in summary
    for message_id in ids:
        part = part_of(runtime, message_id)
        assert message_of(runtime, message_id).state.value == "sent"
        assert part.next_poll_at is not None and aware(part.next_poll_at) > started  # polled again later
