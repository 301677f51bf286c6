"""Moving due work from the database to the queues, at each line's rate and in order.

The database says what is due (`due_at` for sends and reconciliations, `next_poll_at` for polls).
Publishing leases the row: its due time moves `lease_s` ahead, so a task the broker loses (flushed
Redis, killed worker) is simply released again when the lease runs out, and a second delivery of a
task finds the claim taken and does nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from config.celery import RELEASE_EVERY_S
from worker.constants import POLL_LEASE_KEY, TASK_POLL_LINE, TASK_RECONCILE, TASK_SEND
from worker.runtime import Runtime
from worker.store.db import transaction
from worker.store.models import Line, Message, Part, utcnow
from worker.store.record import Locked, lock_message, move_part
from worker.store.states import NOT_YET_ACCEPTED, WAITING_STATES, LineState, Source, State

log = logging.getLogger(__name__)

RELEASE_LIMIT = 2000  # rows per kind per release run; the rest wait for the next run
_WAITING = [s.value for s in WAITING_STATES]
_UNACCEPTED = [s.value for s in NOT_YET_ACCEPTED]


@dataclass
class Outbox:
    """Tasks to publish once the transaction that decided them has committed."""

    items: list[tuple[str, int, float]] = field(default_factory=list)

    def add(self, task: str, message_id: int, countdown_s: float = 0.0) -> None:
        """Remember a task to publish after commit."""
        self.items.append((task, message_id, countdown_s))

    def publish(self) -> int:
        """Publish everything remembered; a lost publish is recovered when the lease runs out."""
        from worker.app import app

        for task, message_id, countdown in self.items:
            try:
                app.send_task(task, args=[message_id], countdown=countdown if countdown > 0.01 else None)
            except Exception:  # broker down: the row's lease brings it back
                log.warning(
                    "could not publish %s for message %s; it will be released again", task, message_id
                )
        published, self.items = len(self.items), []
        return published


def line_rate(runtime: Runtime, line: Line) -> float:
    """The line's own rate if it has one, else the setting."""
    return line.rate_per_s if line.rate_per_s is not None else runtime.settings.line_rate_per_s


def lease(runtime: Runtime, now: datetime) -> datetime:
    """When published work comes due again if its task never ran."""
    return now + timedelta(seconds=runtime.settings.release_lease_s)


def _earlier_unaccepted(line_id: Any, recipient: Any, message_id: Any, now: datetime) -> SelectOfScalar[Any]:
    """Earlier messages to the same recipient on the same line, due and not yet accepted: while one
    exists, a later message waits (a recipient gets texts in enqueue order). The arguments are
    values or, in a correlated subquery, the outer query's columns."""
    earlier = aliased(Message)
    return select(earlier.id).where(
        earlier.line_id == line_id,
        earlier.recipient == recipient,
        col(earlier.id) < message_id,
        col(earlier.state).in_(_UNACCEPTED),
        or_(col(earlier.send_at).is_(None), col(earlier.send_at) <= now),
    )


def _pending_predecessor_exists(session: Session, message: Message, now: datetime) -> bool:
    """True when an earlier message to the same recipient on the same line is not accepted yet."""
    query = _earlier_unaccepted(message.line_id, message.recipient, message.id, now).limit(1)
    return session.exec(query).first() is not None


def try_dispatch(
    session: Session, runtime: Runtime, locked: Locked, line: Line, now: datetime, outbox: Outbox
) -> bool:
    """Publish the message's next part at once if it is its turn and the line has a slot free now."""
    part = locked.next_unaccepted()
    message = locked.message
    if part is None or State(part.state) not in WAITING_STATES or part.dispatched_at is not None:
        return False
    if line.state != LineState.ACTIVE or (part.due_at is not None and part.due_at > now):
        return False
    if (message.send_at and message.send_at > now) or _pending_predecessor_exists(session, message, now):
        return False
    waits = runtime.limiter.reserve(line.id or 0, line_rate(runtime, line), 1, RELEASE_EVERY_S)
    if not waits:
        return False
    _mark_dispatched(runtime, part, now)
    outbox.add(TASK_SEND, message.id or 0, waits[0])
    return True


def _mark_dispatched(runtime: Runtime, part: Part, now: datetime) -> None:
    part.dispatched_at = now
    part.due_at = lease(runtime, now)
    part.releases += 1


def _poisoned(session: Session, runtime: Runtime, part: Part, now: datetime) -> bool:
    """A part released again and again without ever reaching an outcome fails instead of looping."""
    limit = runtime.settings.max_releases_per_part
    if part.releases < limit:
        return False
    locked = lock_message(session, part.message_id)
    if locked is not None:
        target = next(p for p in locked.parts if p.id == part.id)
        description = f"gave up: released {part.releases} times without an outcome"
        move_part(session, locked, target, State.FAILED, Source.SWEEPER, now, description=description)
    return True


def release_due(runtime: Runtime, now: datetime | None = None) -> dict[str, int]:
    """One run of the release job: due sends (at each line's rate), polls and reconciliations."""
    now = now or utcnow()
    outbox = Outbox()
    with transaction(runtime.engine) as session:
        sends = _release_sends(session, runtime, now, outbox)
        polls = _release_polls(session, runtime, now, outbox)
        reconciles = _release_reconciles(session, runtime, now, outbox)
    outbox.publish()
    return {"sends": sends, "polls": polls, "reconciles": reconciles}


def _release_sends(session: Session, runtime: Runtime, now: datetime, outbox: Outbox) -> int:
    lines = session.exec(
        select(Line)
        .where(Line.state == LineState.ACTIVE.value)
        .where(
            col(Line.id).in_(
                select(Part.line_id).where(col(Part.state).in_(_WAITING), col(Part.due_at) <= now).distinct()
            )
        )
    ).all()
    released = 0
    for line in lines:
        rate = line_rate(runtime, line)
        cap = RELEASE_LIMIT if rate <= 0 else math.ceil(rate * RELEASE_EVERY_S) + 1
        parts = [
            p
            for p in eligible_parts(session, line.id or 0, now, cap)
            if not _poisoned(session, runtime, p, now)
        ]
        waits = runtime.limiter.reserve(line.id or 0, rate, len(parts), RELEASE_EVERY_S)
        for part, wait in zip(parts, waits, strict=False):
            _mark_dispatched(runtime, part, now)
            outbox.add(TASK_SEND, part.message_id, wait)
            released += 1
    return released


def eligible_parts(session: Session, line_id: int, now: datetime, limit: int) -> Sequence[Part]:
    """Due parts of a line whose turn it is: the first unaccepted part of their message, and their
    message the oldest unaccepted one to its recipient (so a recipient gets texts in enqueue order)."""
    earlier_part = aliased(Part)
    part_blocked = (
        select(earlier_part.id)
        .where(
            earlier_part.message_id == Part.message_id,
            earlier_part.position < Part.position,
            col(earlier_part.state).in_(_UNACCEPTED),
        )
        .exists()
    )
    message_blocked = _earlier_unaccepted(Message.line_id, Message.recipient, Message.id, now).exists()
    query = (
        select(Part)
        .join(Message, col(Message.id) == Part.message_id)
        .where(Part.line_id == line_id, col(Part.state).in_(_WAITING), col(Part.due_at) <= now)
        .where(~part_blocked, ~message_blocked)
        .order_by(col(Part.due_at), col(Part.message_id))
        .limit(limit)
    )
    return session.exec(query).all()


def _release_polls(session: Session, runtime: Runtime, now: datetime, outbox: Outbox) -> int:
    """One poll task per line with due parts (it lists the line's messages once for all of them).
    A lease in Redis keeps a second one from being published while the first is on its way; if the
    lease is lost (Redis flushed), a second poll is harmless: statuses are recorded idempotently."""
    line_ids = session.exec(
        select(Part.line_id).where(Part.state == State.SENT.value, col(Part.next_poll_at) <= now).distinct()
    ).all()
    lease_ms = int(runtime.settings.release_lease_s * 1000)
    released = 0
    for line_id in line_ids:
        if runtime.redis.set(f"{POLL_LEASE_KEY}{line_id}", "1", nx=True, px=lease_ms):
            outbox.add(TASK_POLL_LINE, line_id)
            released += 1
    return released


def _release_reconciles(session: Session, runtime: Runtime, now: datetime, outbox: Outbox) -> int:
    parts = session.exec(
        select(Part)
        .where(Part.state == State.UNKNOWN.value, col(Part.provider_id).is_(None), col(Part.due_at) <= now)
        .order_by(col(Part.due_at))
        .limit(RELEASE_LIMIT)
    ).all()
    for part in parts:
        part.due_at = lease(runtime, now)
        outbox.add(TASK_RECONCILE, part.message_id)
    return len(parts)
