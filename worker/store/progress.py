"""How far a set of messages has got: counts and outcomes for the demo, the bench and their waits.

The set is a list of ids, or a `Span` of consecutive ids (a bench round on a database of its own, where
nobody else writes between its first and last id: one range scan instead of a list of thousands).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from worker.store.models import Message, Part, StatusEvent
from worker.store.states import FINAL_STATES, NOT_YET_ACCEPTED, State


@dataclass(frozen=True)
class Span:
    """Every message id from first to last, both included."""

    first: int
    last: int


Ids = list[int] | Span


def _among(column: Any, ids: Ids) -> Any:
    return col(column).between(ids.first, ids.last) if isinstance(ids, Span) else col(column).in_(ids)


def _count(session: Session, *where: Any) -> int:
    return int(session.exec(select(func.count()).where(*where)).one())


def state_counts(session: Session) -> Counter[str]:
    """Messages per state, over the whole database."""
    rows = session.exec(select(Message.state, func.count()).group_by(Message.state)).all()
    return Counter({State(state).value: count for state, count in rows})


def parts_not_accepted(session: Session, ids: Ids) -> int:
    """Parts of these messages the provider has not accepted yet (nor refused for good)."""
    return _count(session, _among(Part.message_id, ids), col(Part.state).in_(NOT_YET_ACCEPTED))


def parts_sent(session: Session, ids: Ids) -> int:
    """Parts of these messages the provider gave an id to."""
    return _count(session, _among(Part.message_id, ids), col(Part.provider_id).is_not(None))


def messages_not_final(session: Session, ids: Ids) -> int:
    """Messages of the set not yet delivered, failed or rejected."""
    return _count(session, _among(Message.id, ids), col(Message.state).not_in(FINAL_STATES))


def messages_delivered(session: Session, ids: Ids) -> int:
    """Messages of the set delivered."""
    return _count(session, _among(Message.id, ids), col(Message.state) == State.DELIVERED)


def last_accepted_at(session: Session, ids: Ids) -> datetime | None:
    """When the provider's acceptance of the last of these messages' parts was recorded (None: none yet)."""
    query = select(func.max(StatusEvent.at)).where(
        _among(StatusEvent.message_id, ids), col(StatusEvent.state) == State.SENT
    )
    return session.exec(query).one()


def timings(session: Session, ids: Ids) -> list[tuple[State, datetime, datetime | None]]:
    """Each message's state, when it was enqueued and when it became final (None: not yet)."""
    rows = session.exec(
        select(Message.state, Message.created_at, Message.final_at).where(_among(Message.id, ids))
    )
    return [(State(state), created, final) for state, created, final in rows.all()]


def messages_and_kinds(session: Session, ids: list[int]) -> tuple[list[Message], dict[int, list[str]]]:
    """The messages, and the kinds (sms, mms) of each one's parts in order."""
    messages = list(session.exec(select(Message).where(_among(Message.id, ids))).all())
    kinds: dict[int, list[str]] = {}
    query = (
        select(Part.message_id, Part.kind).where(_among(Part.message_id, ids)).order_by(col(Part.position))
    )
    for message_id, kind in session.exec(query).all():
        kinds.setdefault(message_id, []).append(kind)
    return messages, kinds
