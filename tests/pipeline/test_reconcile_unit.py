"""The reconcile step on a send whose outcome was lost: found at the provider it is sent; not found it
is looked for again until absence is proven, then sent again; a refused key waits for the line's
login. Many texts of a line in doubt are settled with one search of its list. Real Redis and both
databases; the provider is a fake listing the messages given."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col

from tests.pipeline.conftest import LINE, OTHER
from tests.pipeline.steps import BODY, TO, answered, aware, claimed, enqueued, error, line_of, part_of
from worker.infra.broker import queue_keys
from worker.infra.constants import STATUS_QUEUE, TASK_RECONCILE
from worker.infra.runtime import Runtime
from worker.pipeline.reconcile import PAGE_SIZE, reconcile_step
from worker.pipeline.release import release_due
from worker.producer.enqueue import TextRequest, enqueue_many
from worker.store.db import transaction
from worker.store.models import Message, Part, utcnow
from worker.store.states import LineState, State
from worker.zipwhip.errors import Classification, ErrorKind, ProviderError
from worker.zipwhip.results import MessagePage, ProviderMessage


class FakeProvider:
    """Answers message/list with the messages given (or raises the error given)."""

    def __init__(self, messages: list[ProviderMessage], failure: ProviderError | None = None) -> None:
        self.messages = messages
        self.failure = failure
        self.calls = 0

    def list_messages(self, session: str, start: int = 0, limit: int = 20) -> MessagePage:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        page = tuple(self.messages[start : start + limit])
        return MessagePage(len(self.messages), len(page), page)

    def close(self) -> None:
        """Nothing to release (the runtime closes its client at the end of a test)."""


def timed_out(runtime: Runtime, message_id: int) -> int:
    """The text's send timed out: unknown, to be reconciled."""
    now = utcnow()
    answered(
        runtime, claimed(runtime, message_id, now), error(ErrorKind.TIMED_OUT, Classification.AMBIGUOUS), now
    )
    assert part_of(runtime, message_id).state == State.UNKNOWN
    return message_id


@pytest.fixture
def lost(runtime: Runtime) -> Iterator[int]:
    """A text whose send timed out: unknown, to be reconciled."""
    yield timed_out(runtime, enqueued(runtime))


def recipient(n: int) -> str:
    return f"+1206555{n:04d}"


def lost_texts(runtime: Runtime, texts: list[tuple[str, str]], line: str = LINE) -> list[int]:
    """Texts (recipient, body) whose sends all timed out; their message ids."""
    ids = enqueue_many(runtime, [TextRequest(line, to, body) for to, body in texts])
    return [timed_out(runtime, message_id) for message_id in ids]


def with_provider(runtime: Runtime, provider: FakeProvider) -> FakeProvider:
    runtime.__dict__["client"] = provider  # the runtime's cached client
    return provider


def ours(provider_id: str, body: str = BODY, to: str = TO, at: datetime | None = None) -> ProviderMessage:
    return ProviderMessage(
        id=provider_id, body=body, dest_address=to, type="ZO", status_code=1, date_created=at
    )


def test_a_lost_send_found_at_the_provider_is_sent_with_its_id(runtime: Runtime, lost: int) -> None:
    with_provider(runtime, FakeProvider([ours("7002", body="another text"), ours("7001")]))
    summary = reconcile_step(runtime, lost)
    part = part_of(runtime, lost)
    assert "found at the provider as 7001" in summary
    assert (part.state, part.provider_id) == (State.SENT, "7001")
    assert part.due_at is None and part.next_poll_at is not None


def test_a_lost_send_not_found_yet_is_looked_for_again_later(runtime: Runtime, lost: int) -> None:
    with_provider(runtime, FakeProvider([ours("7002", to="+12065559999")]))
    summary = reconcile_step(runtime, lost)
    part = part_of(runtime, lost)
    assert "not found yet" in summary
    assert part.state == State.UNKNOWN
    due = aware(part.due_at)
    assert due is not None and due > utcnow()


def test_a_lost_send_proven_absent_is_due_for_sending_again(runtime: Runtime, lost: int) -> None:
    long_ago = utcnow() - timedelta(seconds=runtime.settings.reconcile_settle_s + 60)
    with transaction(runtime.engine) as session:  # the attempt began long enough ago for absence to prove it
        session.execute(update(Part).where(col(Part.message_id) == lost).values(claimed_at=long_ago))
    with_provider(runtime, FakeProvider([]))
    summary = reconcile_step(runtime, lost)
    part = part_of(runtime, lost)
    assert "sending again" in summary
    assert part.state == State.QUEUED and part.unknown_since is None
    due = aware(part.due_at)
    assert due is not None and due <= utcnow()


def test_a_refused_key_while_searching_waits_for_the_lines_login(runtime: Runtime, lost: int) -> None:
    refused = error(ErrorKind.SESSION_INVALID, Classification.SESSION_INVALID)
    with_provider(runtime, FakeProvider([], failure=refused))
    summary = reconcile_step(runtime, lost)
    part, line = part_of(runtime, lost), line_of(runtime)
    assert "line needs login" in summary
    assert (part.state, part.due_at) == (State.UNKNOWN, None)
    assert line.state == LineState.NEEDS_LOGIN


def test_nothing_is_asked_of_the_provider_for_a_settled_text(runtime: Runtime) -> None:
    message_id = enqueued(runtime)
    provider = with_provider(runtime, FakeProvider([]))
    assert "nothing to reconcile" in reconcile_step(runtime, message_id)
    assert provider.calls == 0


def test_a_lines_texts_in_doubt_are_settled_with_one_search(runtime: Runtime) -> None:
    lost = lost_texts(runtime, [(recipient(n), BODY) for n in range(6)])
    at_provider = [ours(f"80{n}", to=recipient(n)) for n in (4, 2, 0)]  # newest first
    provider = with_provider(runtime, FakeProvider(at_provider))
    summary = reconcile_step(runtime, lost)
    assert provider.calls == 1
    assert "6 messages: 3 sent, 3 looking again" in summary
    parts = [part_of(runtime, message_id) for message_id in lost]
    assert [p.provider_id for p in parts] == ["800", None, "802", None, "804", None]
    assert [p.state for p in parts] == [State.SENT, State.UNKNOWN] * 3


def test_a_search_walks_the_list_back_to_the_earliest_attempt_only(runtime: Runtime) -> None:
    lost = lost_texts(runtime, [(recipient(0), BODY), (recipient(1), BODY)])
    recent, old = utcnow(), utcnow() - timedelta(days=1)
    listed = [
        ours("8001", to=recipient(1), at=recent),
        *(ours(str(9000 + n), body="unrelated", at=recent) for n in range(PAGE_SIZE)),
        ours("8000", to=recipient(0), at=recent),
        *(ours(str(9500 + n), body="unrelated", at=old) for n in range(2 * PAGE_SIZE)),
    ]
    provider = with_provider(runtime, FakeProvider(listed))
    reconcile_step(runtime, lost)
    assert provider.calls == 2  # the second page reaches back before both attempts: no third
    assert [part_of(runtime, m).provider_id for m in lost] == ["8000", "8001"]


def test_two_lost_sends_alike_never_take_the_same_message(runtime: Runtime) -> None:
    """Defensive: the one-recipient order keeps a second text to a recipient from going while the
    first is in doubt; were both in doubt, they still may not settle as one provider message."""
    lost = lost_texts(runtime, [(recipient(n), BODY) for n in range(3)])
    with transaction(runtime.engine) as session:
        session.execute(update(Message).values(recipient=TO))
    with_provider(runtime, FakeProvider([ours("8002"), ours("8001")]))  # two of the three got through
    reconcile_step(runtime, lost)
    parts = [part_of(runtime, message_id) for message_id in lost]
    assert [p.provider_id for p in parts] == ["8001", "8002", None]  # the earlier attempt, the older one
    assert parts[2].state == State.UNKNOWN


def test_a_failed_search_is_the_answer_for_all_of_its_lines_texts(runtime: Runtime) -> None:
    lost = lost_texts(runtime, [(recipient(0), BODY), (recipient(1), BODY)])
    failing = error(ErrorKind.CONNECTION_FAILED, Classification.RETRYABLE)
    provider = with_provider(runtime, FakeProvider([], failure=failing))
    summary = reconcile_step(runtime, lost)
    assert provider.calls == 1 and summary.count("search failed") == 2
    assert all(part_of(runtime, m).state == State.UNKNOWN for m in lost)


def test_the_release_job_hands_each_lines_texts_in_doubt_to_one_task(runtime: Runtime) -> None:
    mine = lost_texts(runtime, [(recipient(n), BODY) for n in range(3)])
    theirs = lost_texts(runtime, [(recipient(3), BODY)], line=OTHER)
    with transaction(runtime.engine) as session:  # due now (they wait reconcile_delay_s first)
        session.execute(update(Part).values(due_at=utcnow() - timedelta(seconds=1)))
    release_due(runtime, utcnow())
    assert sorted(reconcile_tasks(runtime)) == sorted([mine, theirs])


def reconcile_tasks(runtime: Runtime) -> list[list[int]]:
    """The message ids of every reconcile task in the broker."""
    tasks = []
    for raw in (raw for key in queue_keys(STATUS_QUEUE) for raw in runtime.redis.lrange(key, 0, -1)):
        task = json.loads(raw)
        if task["headers"]["task"] == TASK_RECONCILE:
            args, _, _ = json.loads(base64.b64decode(task["body"]))
            tasks.append(args[0])
    return tasks
