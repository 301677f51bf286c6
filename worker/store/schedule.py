"""When a part is next looked at: the only writer of the scheduling columns.

A part waiting to be sent is *due* at `due_at` (None: it waits for its line to log in); publishing a
send task for it *leases* it (`dispatched_at` set, `due_at` pushed a lease ahead, so a task the broker
loses is released again when the lease runs out); a send task *claims* it (`claim_token`,
`claimed_at`, one more of its `attempts`). A part whose send had an unknown outcome is due for
reconciliation at `due_at` (`unknown_since` says since when). A sent part is polled at `next_poll_at`
(None: polling waits for the line's login), `poll_count` times so far.

Every step of the pipeline calls these operations instead of setting the columns itself, so "who
sets `due_at`?" has one answer: this module (and the first one, in `new_messages`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, update
from sqlmodel import Session, col, select

from worker.store.models import Line, Part
from worker.store.states import WAITING_STATES, LineState, State

_WAITING = [s.value for s in WAITING_STATES]


@dataclass(frozen=True)
class PollPolicy:
    """How patiently a sent part is polled: the waits between polls (the last repeats) and the horizon
    after which it is left unknown."""

    delays_s: Sequence[float]
    horizon_s: float

    def first_poll(self, now: datetime) -> datetime:
        """When a part we learn is sent `now` is first polled."""
        return now + timedelta(seconds=self.delays_s[0])


# Sending


def lease(session: Session, part_ids: Sequence[int], now: datetime, lease_s: float) -> set[int]:
    """Mark the parts released to a send task (one statement); returns those still due when it ran.
    Their due time moves a lease ahead: if the task is lost, they are released again then."""
    if not part_ids:
        return set()
    leased = session.execute(
        update(Part)
        .where(col(Part.id).in_(part_ids), col(Part.state).in_(_WAITING), col(Part.due_at) <= now)
        .values(dispatched_at=now, due_at=now + timedelta(seconds=lease_s), releases=col(Part.releases) + 1)
        .returning(col(Part.id)),
        execution_options={"synchronize_session": False},
    )
    return {int(part_id) for part_id in leased.scalars()}


def lease_part(part: Part, now: datetime, lease_s: float) -> None:
    """Lease one part already loaded under its message's lock (the next part of a message going on)."""
    part.dispatched_at = now
    part.due_at = now + timedelta(seconds=lease_s)
    part.releases += 1


def release_again(part: Part, now: datetime) -> None:
    """A released part that may not go yet (an earlier text to its recipient is still on its way):
    due again now, for the release job to look at in turn."""
    part.dispatched_at = None
    part.due_at = now


def hand_back(part: Part, due_at: datetime) -> None:
    """A released part that came too late for its line's pace (its worker ran behind): due again when
    the pace allows. That release does not count against the part: it never had its chance."""
    part.dispatched_at = None
    part.due_at = due_at
    part.releases = max(0, part.releases - 1)


def release_held(session: Session, message_ids: Sequence[int], now: datetime) -> int:
    """The released, unclaimed parts of these messages are due now: the worker that held their send
    tasks died. Returns how many."""
    if not message_ids:
        return 0
    held = session.exec(
        update(Part)
        .where(
            col(Part.message_id).in_(sorted(set(message_ids))),
            col(Part.state).in_(_WAITING),
            col(Part.dispatched_at).is_not(None),
        )
        .values(dispatched_at=None, due_at=now),
        execution_options={"synchronize_session": False},
    )
    return held.rowcount or 0


def reconcile_held(session: Session, message_ids: Sequence[int], now: datetime) -> int:
    """The unknown parts of these messages are due for reconciliation now: the worker that held their
    reconciliation tasks died. Returns how many."""
    if not message_ids:
        return 0
    held = session.exec(
        update(Part)
        .where(
            col(Part.message_id).in_(sorted(set(message_ids))),
            col(Part.state) == State.UNKNOWN.value,
            col(Part.provider_id).is_(None),
            col(Part.due_at).is_not(None),
        )
        .values(due_at=now),
        execution_options={"synchronize_session": False},
    )
    return held.rowcount or 0


def take_claim(part: Part, token: str, worker: str, now: datetime) -> None:
    """The send task with this token, run by this worker, takes the part: one more attempt, no
    longer due."""
    part.claim_token = token
    part.claimed_by = worker or None
    part.claimed_at = now
    part.dispatched_at = part.due_at = None
    part.attempts += 1


def retry_at(part: Part, when: datetime) -> None:
    """A retryable failure: the next attempt is due at `when`."""
    part.due_at = when


def attempt_not_counted(part: Part) -> None:
    """The attempt failed for the line's sake (its login), not the message's: give it back."""
    part.attempts -= 1


def await_login(part: Part) -> None:
    """The part waits, not due at all, until its line logs in again (`resume_lines` wakes it)."""
    part.dispatched_at = part.due_at = None


def stop_polling(part: Part) -> None:
    """No more polls for this part (final, past the horizon, or waiting for its line's login)."""
    part.next_poll_at = None


def await_login_polls(session: Session, line_id: int) -> None:
    """Every sent part of the line stops being polled until the line logs in again."""
    session.execute(
        update(Part)
        .where(col(Part.line_id) == line_id, col(Part.state) == State.SENT.value)
        .values(next_poll_at=None),
        execution_options={"synchronize_session": False},
    )


# Outcomes


def to_reconcile(part: Part, now: datetime, after_s: float = 0.0) -> None:
    """The send's outcome is not known: look for it at the provider `after_s` from now."""
    part.unknown_since = now
    part.due_at = now + timedelta(seconds=after_s)


def reconcile_again(part: Part, when: datetime | None) -> None:
    """Look for the unknown send again at `when` (None: once the line has logged in again)."""
    part.due_at = when


def lease_reconcile(part: Part, now: datetime, lease_s: float) -> None:
    """A reconciliation task is on its way for the part: due again a lease later if it is lost."""
    part.due_at = now + timedelta(seconds=lease_s)


def send_again(part: Part, now: datetime) -> None:
    """Reconciliation proved the provider never got it: due for sending now."""
    part.unknown_since = None
    part.due_at = now


def schedule_sent(part: Part, sent_at: datetime, now: datetime, policy: PollPolicy) -> None:
    """The provider has the part (since `sent_at`; we learn it `now`): no longer due for sending,
    polled first after the policy's first wait."""
    part.sent_at = sent_at
    part.due_at = None
    part.poll_count = 0
    part.next_poll_at = policy.first_poll(now)


def schedule_next_poll(part: Part, now: datetime, policy: PollPolicy) -> bool:
    """Back off before the next poll; False (and no more polls) once the horizon has passed."""
    horizon = (part.sent_at or now) + timedelta(seconds=policy.horizon_s)
    if now >= horizon:
        part.next_poll_at = None
        return False
    part.poll_count += 1
    delay = policy.delays_s[min(part.poll_count, len(policy.delays_s) - 1)]
    part.next_poll_at = min(now + timedelta(seconds=delay), horizon)
    return True


NOT_DUE = {"due_at": None, "dispatched_at": None}  # a part no longer due for sending, in a bulk statement


def unschedule(part: Part) -> None:
    """A final part is never looked at again."""
    part.due_at = part.dispatched_at = None
    part.next_poll_at = None


# Lines


def resume_lines(session: Session, now: datetime, line_id: int | None = None) -> int:
    """Make everything that waited for a line (or for every active line) due now: sends,
    reconciliations and polls. Returns how many parts it woke."""
    lines = [line_id] if line_id is not None else select(Line.id).where(Line.state == LineState.ACTIVE.value)
    waiting_to_send: ColumnElement[bool] = or_(
        col(Part.state).in_(_WAITING),
        (col(Part.state) == State.UNKNOWN.value) & col(Part.provider_id).is_(None),
    )
    sends = session.exec(
        update(Part)
        .where(col(Part.line_id).in_(lines), col(Part.due_at).is_(None), waiting_to_send)
        .values(due_at=now, dispatched_at=None),
        execution_options={"synchronize_session": False},
    )
    polls = session.exec(
        update(Part)
        .where(
            col(Part.line_id).in_(lines),
            col(Part.state) == State.SENT.value,
            col(Part.next_poll_at).is_(None),
        )
        .values(next_poll_at=now),
        execution_options={"synchronize_session": False},
    )
    return (sends.rowcount or 0) + (polls.rowcount or 0)
