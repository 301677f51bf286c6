"""The reconcile step on a send whose outcome was lost: found at the provider it is sent; not found it
is looked for again until absence is proven, then sent again; a refused key waits for the line's
login. Real Redis and both databases; the provider is a fake listing the messages given."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col

from tests.pipeline.steps import BODY, TO, answered, aware, claimed, enqueued, error, line_of, part_of
from worker.infra.runtime import Runtime
from worker.pipeline.reconcile import reconcile_step
from worker.store.db import transaction
from worker.store.models import Part, utcnow
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


@pytest.fixture
def lost(runtime: Runtime) -> Iterator[int]:
    """A text whose send timed out: unknown, to be reconciled."""
    message_id = enqueued(runtime)
    now = utcnow()
    answered(
        runtime, claimed(runtime, message_id, now), error(ErrorKind.TIMED_OUT, Classification.AMBIGUOUS), now
    )
    assert part_of(runtime, message_id).state == State.UNKNOWN
    yield message_id


def with_provider(runtime: Runtime, provider: FakeProvider) -> FakeProvider:
    runtime.__dict__["client"] = provider  # the runtime's cached client
    return provider


def ours(provider_id: str, body: str = BODY, to: str = TO) -> ProviderMessage:
    return ProviderMessage(id=provider_id, body=body, dest_address=to, type="ZO", status_code=1)


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
