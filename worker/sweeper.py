"""The sweeper (run by beat): settles what a dead worker, a lost task or the clock left behind.

- a part claimed for sending longer than the claim timeout: its worker died mid-call, so its
  outcome is unknown and it goes to reconciliation (never straight back to the queue);
- a message past its `expires_at` that has not gone out: rejected, not sent late;
- a part waiting with no due time on a line that is active again: due now.
Lost tasks for queued, retrying and sent rows need no sweeping: their lease runs out and the
release job publishes them again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from worker.hooks import notify_final
from worker.runtime import Runtime
from worker.store.db import transaction
from worker.store.models import Message, Part, utcnow
from worker.store.record import lock_messages, move_part
from worker.store.schedule import resume_lines, to_reconcile
from worker.store.states import WAITING_STATES, Source, State

SWEEP_LIMIT = 500  # rows per kind per run
_WAITING = [s.value for s in WAITING_STATES]


def sweep(runtime: Runtime, now: datetime | None = None) -> dict[str, int]:
    """One sweeper run; returns what it did, by kind."""
    now = now or utcnow()
    finals: list[tuple[int, str]] = []
    counts = {}
    # A transaction each: the first two hold message locks, the last updates parts in bulk without
    # them, and one transaction holding both could wait on a send task that waits on it.
    with transaction(runtime.engine) as session:
        counts["lost_claims"] = _lost_claims(session, runtime, now)
    with transaction(runtime.engine) as session:
        counts["expired"] = _expired(session, now, finals)
    with transaction(runtime.engine) as session:
        counts["resumed"] = resume_lines(session, now)
    for message_id, state in finals:
        notify_final(runtime.settings.outcome_hook, message_id, state)
    return counts


def _lost_claims(session: Session, runtime: Runtime, now: datetime) -> int:
    cutoff = now - timedelta(seconds=runtime.settings.claim_timeout_s)
    stale = session.exec(
        select(Part.message_id)
        .where(Part.state == State.SENDING.value, col(Part.claimed_at) < cutoff)
        .limit(SWEEP_LIMIT)
    ).all()
    for locked in lock_messages(session, stale).values():
        part = locked.next_unaccepted()
        if part is None or part.state != State.SENDING.value:
            continue
        to_reconcile(part, now)
        description = "claim expired (worker lost mid-send?); reconciling"
        move_part(session, locked, part, State.UNKNOWN, Source.SWEEPER, now, description=description)
    return len(set(stale))


def _expired(session: Session, now: datetime, finals: list[tuple[int, str]]) -> int:
    expired = session.exec(
        select(Part.message_id)
        .join(Message, col(Message.id) == Part.message_id)
        .where(col(Part.state).in_(_WAITING), col(Message.expires_at) <= now)
        .limit(SWEEP_LIMIT)
    ).all()
    for message_id, locked in lock_messages(session, expired).items():
        part = locked.next_unaccepted()
        if part is None or part.state not in _WAITING:
            continue
        move_part(
            session, locked, part, State.REJECTED, Source.SWEEPER, now, description="expired before sending"
        )
        if locked.newly_final:
            finals.append((message_id, locked.message.state))
    return len(set(expired))
