"""Publishing send work: the outbox of tasks to publish after commit, and the turn rules a part must
pass before it may go (its line's rate, its place among the texts to the same recipient).

The release job (`worker.release`) publishes most sends; `try_dispatch` publishes the next part of a
message straight away when the previous one was just accepted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from config.celery import RELEASE_EVERY_S
from worker.constants import TASK_SEND
from worker.runtime import Runtime
from worker.store.models import Line, Message
from worker.store.record import Locked
from worker.store.schedule import lease_part
from worker.store.states import NOT_YET_ACCEPTED, WAITING_STATES, LineState, State

log = logging.getLogger(__name__)

UNACCEPTED = [s.value for s in NOT_YET_ACCEPTED]


@dataclass
class Outbox:
    """Tasks to publish once the transaction that decided them has committed."""

    items: list[tuple[str, int | list[int], float]] = field(default_factory=list)

    def add(self, task: str, argument: int | list[int], countdown_s: float = 0.0) -> None:
        """Remember a task to publish after commit: an id, or for sends a list of message ids."""
        self.items.append((task, argument, countdown_s))

    def publish(self) -> int:
        """Publish everything remembered; a lost publish is recovered when the lease runs out."""
        from worker.app import app

        with app.producer_or_acquire() as producer:
            for task, argument, countdown in self.items:
                try:
                    app.send_task(
                        task,
                        args=[argument],
                        countdown=countdown if countdown > 0.01 else None,
                        producer=producer,
                    )
                except Exception:  # broker down: the row's lease brings it back
                    log.warning("could not publish %s for %s; it will be released again", task, argument)
        published, self.items = len(self.items), []
        return published


def line_rate(runtime: Runtime, line: Line) -> float:
    """The line's own rate if it has one, else the setting."""
    return line.rate_per_s if line.rate_per_s is not None else runtime.settings.line_rate_per_s


def send_cost(runtime: Runtime, kind: str) -> float:
    """How many of its line's rate slots a part takes: an SMS one, an MMS the setting."""
    return runtime.settings.mms_send_cost if kind != "sms" else 1.0


def earlier_unaccepted(line_id: Any, recipient: Any, message_id: Any, now: datetime) -> SelectOfScalar[Any]:
    """Earlier messages to the same recipient on the same line, due and not yet accepted: while one
    exists, a later message waits (a recipient gets texts in enqueue order). The arguments are
    values or, in a correlated subquery, the outer query's columns."""
    earlier = aliased(Message)
    return select(earlier.id).where(
        earlier.line_id == line_id,
        earlier.recipient == recipient,
        col(earlier.id) < message_id,
        col(earlier.state).in_(UNACCEPTED),
        or_(col(earlier.send_at).is_(None), col(earlier.send_at) <= now),
    )


def waiting_for_predecessor(session: Session, message_ids: list[int], now: datetime) -> set[int]:
    """Those of the messages that an earlier message to the same recipient on the same line must
    go before (one query for all of them)."""
    if not message_ids:
        return set()
    blocked = earlier_unaccepted(Message.line_id, Message.recipient, Message.id, now).exists()
    query = select(Message.id).where(col(Message.id).in_(message_ids), blocked)
    return {int(i or 0) for i in session.exec(query).all()}


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
    if message.send_at and message.send_at > now:
        return False
    if waiting_for_predecessor(session, [message.id or 0], now):
        return False
    cost = [send_cost(runtime, part.kind)]
    waits = runtime.limiter.reserve(line.id or 0, line_rate(runtime, line), 1, RELEASE_EVERY_S, cost)
    if not waits:
        return False
    lease_part(part, now, runtime.settings.release_lease_s)
    outbox.add(TASK_SEND, [message.id or 0], waits[0])
    return True
