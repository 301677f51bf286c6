"""Helpers for the unit tests of the send, reconcile and sweep steps: a text enqueued on the
pipeline runtime's line, claimed by a send task, and the provider's errors as the client raises them."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select

from tests.pipeline.conftest import LINE
from worker.infra.runtime import Runtime
from worker.pipeline.dispatch import Outbox
from worker.pipeline.send.claim import claim_all
from worker.pipeline.send.record import record_all
from worker.pipeline.send.values import Accepted, Claimed, Outcome
from worker.producer.enqueue import TextRequest, enqueue_many
from worker.store.db import transaction
from worker.store.models import Line, Message, Part
from worker.store.schedule import lease
from worker.zipwhip.errors import Classification, ErrorKind, ProviderError

TO = "+12065550100"
BODY = "see you at noon"
TOKEN = "task-1"


def error(kind: ErrorKind, classification: Classification, code: int | None = None) -> ProviderError:
    """A provider error as the client raises it."""
    return ProviderError(kind, classification, f"{kind.value} for the test", code=code, method="message/send")


def enqueued(runtime: Runtime, **request: object) -> int:
    """A one-part text on the test line; its message id."""
    [message_id] = enqueue_many(runtime, [TextRequest(LINE, TO, BODY, **request)])  # type: ignore[arg-type]
    return message_id


def claimed(runtime: Runtime, message_id: int, now: datetime) -> Claimed:
    """The text's part released to (leased) and claimed by the send task `TOKEN`."""
    with transaction(runtime.engine) as session:
        part_ids = session.exec(select(Part.id).where(Part.message_id == message_id)).all()
        assert lease(session, [p or 0 for p in part_ids], now, 60.0)
    with transaction(runtime.engine) as session:
        claims, outcomes = claim_all(session, [message_id], TOKEN, "worker-1", now)
    assert not outcomes and len(claims) == 1, outcomes
    return claims[0]


def answered(runtime: Runtime, claim: Claimed, answer: Accepted | ProviderError, now: datetime) -> Outcome:
    """Record the provider's answer to the claimed send, as the send step does."""
    with transaction(runtime.engine) as session:
        [outcome] = record_all(session, runtime, [claim], [answer], TOKEN, now, Outbox())
    return outcome


def part_of(runtime: Runtime, message_id: int) -> Part:
    """The text's (only) part, as stored."""
    with transaction(runtime.engine) as session:
        return session.exec(select(Part).where(Part.message_id == message_id)).one()


def message_of(runtime: Runtime, message_id: int) -> Message:
    """The message, as stored."""
    with transaction(runtime.engine) as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message


def line_of(runtime: Runtime) -> Line:
    """The test line, as stored."""
    with transaction(runtime.engine) as session:
        return session.exec(select(Line).where(Line.phone == "+1" + LINE)).one()


def aware(value: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes: they are UTC."""
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
