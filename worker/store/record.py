"""The one place that writes status: moves parts, derives the message's state, keeps the history.

Every writer (send, poll, webhook, sweeper, reconciliation) calls these inside a transaction that
holds the message row locked (`lock_message`), so two writers never interleave on one message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, event, insert
from sqlmodel import Session, col, update

import worker.api.callbacks
from worker.store import locked_rows
from worker.store.consent import suppress
from worker.store.models import Message, Part, StatusEvent
from worker.store.schedule import NOT_DUE, PollPolicy, schedule_sent, stop_polling, unschedule
from worker.store.states import FINAL_STATES, NOT_YET_ACCEPTED, Source, State, can_move, derive_message_state


@dataclass
class Locked:
    """A message and its parts (in send order), loaded under a row lock."""

    message: Message
    parts: list[Part]
    was_final: bool = False

    def part(self, part_id: int | None) -> Part | None:
        """The locked copy of one of its parts (found by id)."""
        return next((p for p in self.parts if p.id == part_id), None)

    def next_unaccepted(self) -> Part | None:
        """The first part the provider has not accepted yet (parts go out in order)."""
        return next((p for p in self.parts if State(p.state) in NOT_YET_ACCEPTED), None)

    @property
    def final(self) -> bool:
        """True once the message can no longer change state."""
        return State(self.message.state) in FINAL_STATES

    @property
    def newly_final(self) -> str | None:
        """The message's final state if it became final under this lock, else None."""
        return self.message.state if self.final and not self.was_final else None


def lock_message(session: Session, message_id: int) -> Locked | None:
    """Load a message with its parts, holding their row locks until the transaction ends."""
    return lock_messages(session, [message_id]).get(message_id)


def lock_messages(session: Session, message_ids: Iterable[int]) -> dict[int, Locked]:
    """Load messages with their parts, holding their row locks until the transaction ends (two
    queries however many messages; the ones not found are left out).

    Locks are taken in id order, messages before parts, by every writer, so two writers never wait
    on each other in a circle. The rows are read afresh under the lock, as plain objects outside the
    session whose changes are written back by `worker.store.locked_rows` (the ORM's unit of work was
    half a worker's CPU): change them only through the `Locked` returned. The parts are locked too: the
    release job and a line's login update parts without the message lock, and must wait for a claim to
    commit rather than overwrite it.
    """
    ids = sorted(set(message_ids))
    if not ids:
        return {}
    messages = locked_rows.load(session, Message, _MESSAGES.c.id.in_(ids), [_MESSAGES.c.id])
    parts: dict[int, list[Part]] = {m.id or 0: [] for m in messages}
    for part in locked_rows.load(
        session, Part, _PARTS.c.message_id.in_(ids), [_PARTS.c.message_id, _PARTS.c.position]
    ):
        parts[part.message_id].append(part)
    return {
        m.id or 0: Locked(m, parts[m.id or 0], was_final=State(m.state) in FINAL_STATES) for m in messages
    }


_MESSAGES: Table = Message.__table__  # type: ignore[attr-defined]
_PARTS: Table = Part.__table__  # type: ignore[attr-defined]


def add_event(
    session: Session,
    part: Part | None,
    message_id: int,
    state: State,
    source: Source,
    now: datetime,
    *,
    code: int | None = None,
    description: str | None = None,
) -> None:
    """Append one row to the message's history (written with the transaction's other rows)."""
    _events(session).append(
        {
            "message_id": message_id,
            "part_id": part.id if part else None,
            "at": now,
            "source": source.value,
            "state": state.value,
            "code": code,
            "status_code": part.status_code if part else None,
            "message_status": part.message_status if part else None,
            "description": description,
        }
    )


_EVENTS = "outbox_history"  # the session's history rows not yet written
_INSERT_EVENTS = insert(StatusEvent)


def _events(session: Session) -> list[dict[str, object]]:
    return session.info.setdefault(_EVENTS, [])  # type: ignore[no-any-return]


@event.listens_for(Session, "before_commit")
def _write_history(session: Session) -> None:
    """History rows go in one statement for the whole transaction, just before it commits: building an
    ORM object for each showed as a tenth of a worker's time."""
    rows = session.info.pop(_EVENTS, None)
    if rows:
        session.execute(_INSERT_EVENTS, rows)


@event.listens_for(Session, "after_rollback")
def _drop_history(session: Session) -> None:
    session.info.pop(_EVENTS, None)


def move_part(
    session: Session,
    locked: Locked,
    part: Part,
    new: State,
    source: Source,
    now: datetime,
    *,
    code: int | None = None,
    description: str | None = None,
) -> bool:
    """Move one part to `new` if the rules allow it; record why; keep the message's state in step.

    A part that ends failed or rejected takes the parts after it, not yet sent, with it: a message
    that cannot arrive whole is not sent in pieces. Returns False (and changes nothing) when the move
    is not allowed, e.g. a late answer for a part that is already final.
    """
    _check_locked(locked, part)
    current = State(part.state)
    if current is new or not can_move(current, new):
        return False
    part.state = new
    if new in FINAL_STATES:
        part.final_at = now
        unschedule(part)
    if new in (State.FAILED, State.REJECTED):
        part.error_code = code if code is not None else part.error_code
        part.error_description = description
    add_event(session, part, locked.message.id or 0, new, source, now, code=code, description=description)
    if new in (State.FAILED, State.REJECTED):
        _end_later_parts(session, locked, part, new, source, now)
    refresh_message(locked, now)
    return True


def mark_sent(
    session: Session,
    locked: Locked,
    part: Part,
    accepted: tuple[str, str | None],
    sent_at: datetime,
    polls: PollPolicy,
    source: Source,
    now: datetime,
    description: str,
) -> bool:
    """The provider has the part (`accepted` = its id and fingerprint): keep them, clear any error of
    an earlier attempt, schedule the first poll, and move the part to sent."""
    _check_locked(locked, part)
    part.provider_id, part.fingerprint = accepted
    schedule_sent(part, sent_at, now, polls)
    part.error_kind = part.error_description = None
    part.error_code = None
    return move_part(session, locked, part, State.SENT, source, now, description=description)


def _check_locked(locked: Locked, part: Part) -> None:
    """Changes go through the locked copies: another copy of the row (an ORM object loaded in the same
    transaction) would not be written, or would be written over."""
    if not any(p is part for p in locked.parts):
        raise ValueError(f"part {part.id} is not one of the locked rows of message {locked.message.id}")


def _end_later_parts(
    session: Session, locked: Locked, failed: Part, new: State, source: Source, now: datetime
) -> None:
    reason = f"not sent: part {failed.position + 1} ended {new.value}"
    for later in locked.parts:
        if later.position > failed.position and State(later.state) in (State.QUEUED, State.RETRYING):
            later.state = new
            later.final_at = now
            unschedule(later)
            later.error_description = reason
            add_event(session, later, locked.message.id or 0, new, source, now, description=reason)


def refresh_message(locked: Locked, now: datetime) -> bool:
    """Derive the message's state from its parts; returns True when it just became final."""
    message = locked.message
    old = State(message.state)
    new = derive_message_state(State(p.state) for p in locked.parts)
    if new is old or old in FINAL_STATES:
        return False
    message.state = new
    message.updated_at = now
    if new not in FINAL_STATES:
        return False
    message.final_at = now
    deciding = next((p for p in locked.parts if State(p.state) is new), None)
    if deciding is not None and new is not State.DELIVERED:
        message.error_code = deciding.error_code
        message.error_description = deciding.error_description
    return True


@dataclass(frozen=True)
class DeliveryReport:
    """A delivery status the provider reported, its codes already read by the caller: the store
    knows no provider's codes, only what they mean."""

    status_code: int
    message_status: int | None
    description: str
    advances: bool  # says more than the part's last status (a report never moves a part backwards)
    final: bool
    delivered: bool  # when final: delivered, else failed
    opted_out_by: str | None = None  # the recipient opted out: the suppression's source


def record_delivery(
    session: Session, locked: Locked, part: Part, report: DeliveryReport, source: Source, now: datetime
) -> bool:
    """Record a delivery status seen by a poll, a webhook, a sync or a reconciliation.

    Final ones end the part delivered or failed (with the reason); others are kept as progress in
    the history. Duplicates and out-of-order reports (not `advances`) change nothing.
    """
    _check_locked(locked, part)
    if State(part.state) in FINAL_STATES or State(part.state) not in (State.SENT, State.UNKNOWN):
        return False
    if not report.advances:
        return False
    part.status_code = report.status_code
    part.message_status = report.message_status
    if report.opted_out_by:  # however we learn it: poll, webhook or sync
        suppress(
            session, locked.message.line_id, locked.message.recipient, report.opted_out_by, now, certain=True
        )
    if not report.final:
        state = State(part.state)
        add_event(session, part, locked.message.id or 0, state, source, now, description=report.description)
        return True
    new = State.DELIVERED if report.delivered else State.FAILED
    stop_polling(part)
    return move_part(session, locked, part, new, source, now, code=None, description=report.description)


def quarantine(session: Session, message_id: int, reason: str, source: Source, now: datetime) -> str | None:
    """End a message that cannot be handled (its rows make the code raise: a bug or bad data) as
    failed, with the reason in its history, without loading it through the code that raised: plain
    statements on its parts not yet accepted and on the message. Returns the message's new state, or
    None if there was nothing left to end."""
    waiting = col(Part.state).not_in([State.SENT.value, *(s.value for s in FINAL_STATES)])
    ended = session.execute(
        update(Part)
        .where(col(Part.message_id) == message_id, waiting)
        .values(state=State.FAILED.value, final_at=now, error_description=reason, **NOT_DUE)
        .returning(col(Part.id)),
        execution_options={"synchronize_session": False},
    ).all()
    if not ended:
        return None
    session.execute(
        update(Message)
        .where(col(Message.id) == message_id)
        .values(state=State.FAILED.value, final_at=now, updated_at=now, error_description=reason),
        execution_options={"synchronize_session": False},
    )
    worker.api.callbacks.note_plain_change(session, message_id, State.FAILED, now)
    for (part_id,) in ended:
        _events(session).append(
            {
                "message_id": message_id,
                "part_id": part_id,
                "at": now,
                "source": source.value,
                "state": State.FAILED.value,
                "code": None,
                "status_code": None,
                "message_status": None,
                "description": reason,
            }
        )
    return State.FAILED.value


CANCEL_CHUNK = 500  # messages locked per statement


def cancel(session: Session, message_ids: Iterable[int], now: datetime) -> list[int]:
    """End as rejected every one of these messages that has not gone out yet (its next part waits
    to be sent); returns those it ended. Locks are taken in id order, like every writer's."""
    ended = []
    ids = sorted(set(message_ids))
    for start in range(0, len(ids), CANCEL_CHUNK):
        for message_id, locked in lock_messages(session, ids[start : start + CANCEL_CHUNK]).items():
            part = locked.next_unaccepted()
            if part is None or State(part.state) not in (State.QUEUED, State.RETRYING):
                continue
            move_part(session, locked, part, State.REJECTED, Source.ENQUEUE, now, description="cancelled")
            ended.append(message_id)
    return ended
