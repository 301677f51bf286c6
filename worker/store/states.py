"""Message and part states, and the rules that move them (one table, one function)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum, StrEnum


class State(StrEnum):
    """Where a message (or one of its provider parts) stands."""

    QUEUED = "queued"  # recorded, waiting for its turn (or for its line to log in again)
    SENDING = "sending"  # claimed by a worker; the provider call may be under way
    RETRYING = "retrying"  # a retryable failure; the next attempt is due later
    UNKNOWN = "unknown"  # outcome not known: reconciled against the provider, never blindly resent
    SENT = "sent"  # accepted by the provider, waiting for a final delivery status
    DELIVERED = "delivered"  # final: the carrier or handset confirmed it
    FAILED = "failed"  # final: the provider or carrier refused it, or attempts ran out
    REJECTED = "rejected"  # final: never sent (opted-out recipient, expired, invalid)


class Priority(IntEnum):
    """How soon a text goes on its line, ahead of the others there: the lower, the sooner.

    High texts (a one-time code, an appointment moved) take their line's next rate slots ahead of
    normal ones, normal ahead of bulk (a campaign). Texts of one priority go in enqueue order; to one
    recipient, a text never overtakes an earlier one of its own priority or a more urgent one, but an
    urgent text may overtake a less urgent one (an urgent text does not wait behind a campaign).
    """

    HIGH = 0
    NORMAL = 1
    BULK = 2

    @property
    def label(self) -> str:
        """The name users write: "high", "normal" or "bulk"."""
        return self.name.lower()

    @classmethod
    def named(cls, label: str) -> Priority:
        """The priority a user wrote; ValueError for anything else."""
        try:
            return cls[label.upper()]
        except KeyError:
            raise ValueError(f"priority must be high, normal or bulk, not {label!r}") from None


class LineState(StrEnum):
    """Whether a line can send right now."""

    ACTIVE = "active"
    NEEDS_LOGIN = "needs_login"  # its session key stopped working: messages wait for `outbox line add`


class Source(StrEnum):
    """Who recorded a status change (kept in the history)."""

    ENQUEUE = "enqueue"
    SEND = "send"
    POLL = "poll"
    WEBHOOK = "webhook"
    SWEEPER = "sweeper"
    RECONCILE = "reconcile"


FINAL_STATES = frozenset({State.DELIVERED, State.FAILED, State.REJECTED})
# A message in one of these states may still hold back a later one to the same recipient.
IN_FLIGHT_SQL = "state IN ('queued', 'sending', 'retrying', 'unknown')"
WAITING_STATES = frozenset({State.QUEUED, State.RETRYING})  # may be claimed when due
NOT_YET_ACCEPTED = frozenset({State.QUEUED, State.SENDING, State.RETRYING, State.UNKNOWN})

# The only moves a part may make. A final state never changes; nothing moves backwards except
# UNKNOWN -> QUEUED, when reconciliation proves the provider never got the message.
ALLOWED_MOVES: dict[State, frozenset[State]] = {
    State.QUEUED: frozenset({State.SENDING, State.REJECTED, State.FAILED}),
    State.SENDING: frozenset(
        {State.SENT, State.RETRYING, State.FAILED, State.REJECTED, State.UNKNOWN, State.QUEUED}
    ),
    State.RETRYING: frozenset({State.SENDING, State.REJECTED, State.FAILED}),
    State.UNKNOWN: frozenset({State.SENT, State.QUEUED, State.DELIVERED, State.FAILED, State.REJECTED}),
    State.SENT: frozenset({State.DELIVERED, State.FAILED, State.UNKNOWN}),
    State.DELIVERED: frozenset(),
    State.FAILED: frozenset(),
    State.REJECTED: frozenset(),
}


def can_move(current: State, new: State) -> bool:
    """True when a part in `current` may move to `new`."""
    return new in ALLOWED_MOVES[current]


def derive_message_state(part_states: Iterable[State]) -> State:
    """The state of a message from the states of its parts, which go out in order.

    A part that ended rejected or failed decides the message at once; otherwise the first part
    not yet accepted says where the message stands, and a message whose every part was accepted
    is sent until all are delivered.
    """
    states = list(part_states)
    if not states:
        return State.REJECTED
    for bad in (State.REJECTED, State.FAILED):
        if bad in states:
            return bad
    if all(s is State.DELIVERED for s in states):
        return State.DELIVERED
    pending = [s for s in states if s in NOT_YET_ACCEPTED]
    if not pending:
        return State.SENT
    first = pending[0]
    if first is State.QUEUED and len(pending) < len(states):
        return State.SENDING  # an earlier part went out; the rest are on their way
    return first
