"""Reading messages back, never writing: a message's parts and history (`outbox status`, reports), a
batch's states and a page of messages (the HTTP API), and the figures the metrics show."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, func, select

from worker.store.models import Line, Message, Part, StatusEvent
from worker.store.states import WAITING_STATES, State

STATES_CHUNK = 1000  # ids per IN list when reading a batch's states


def message_of(session: Session, message_id: int) -> Message | None:
    """The message with this id, if there is one."""
    return session.get(Message, message_id)


def message_state(session: Session, message_id: int) -> State | None:
    """The message's state, or None if there is no such message."""
    message = session.get(Message, message_id)
    return message.state if message else None


def parts_of(session: Session, message_id: int) -> list[Part]:
    """The message's parts, in send order."""
    query = select(Part).where(Part.message_id == message_id).order_by(col(Part.position))
    return list(session.exec(query).all())


def history_of(session: Session, message_id: int) -> list[StatusEvent]:
    """The message's history, oldest first."""
    query = select(StatusEvent).where(StatusEvent.message_id == message_id).order_by(col(StatusEvent.id))
    return list(session.exec(query).all())


def states_of(session: Session, message_ids: Sequence[int]) -> dict[int, State]:
    """The state of each of these messages that exists (a batch's answer)."""
    found: dict[int, State] = {}
    for start in range(0, len(message_ids), STATES_CHUNK):
        chunk = message_ids[start : start + STATES_CHUNK]
        rows = session.exec(select(Message.id, Message.state).where(col(Message.id).in_(chunk))).all()
        found.update((int(n or 0), State(state)) for n, state in rows)
    return found


@dataclass(frozen=True)
class PageFilter:
    """Which messages a page lists: from these lines (None: any), of this line, state, or age."""

    lines: frozenset[str] | None = None
    line: str | None = None
    state: str | None = None
    since: datetime | None = None


def messages_page(
    session: Session, wanted: PageFilter, after_id: int, limit: int
) -> list[tuple[Message, str]]:
    """Up to `limit` messages (with their line's number) after the id `after_id`, in id order: a
    cursor page, as cheap on the millionth message as on the first."""
    query = select(Message, Line.phone).join(Line, col(Line.id) == col(Message.line_id))
    query = query.where(col(Message.id) > after_id)
    if wanted.lines is not None:
        query = query.where(col(Line.phone).in_(sorted(wanted.lines)))
    if wanted.line is not None:
        query = query.where(col(Line.phone) == wanted.line)
    if wanted.state is not None:
        query = query.where(col(Message.state) == wanted.state)
    if wanted.since is not None:
        query = query.where(col(Message.created_at) >= wanted.since)
    return [(message, phone) for message, phone in session.exec(query.order_by(col(Message.id)).limit(limit))]


def messages_by_state(session: Session) -> dict[str, int]:
    """How many messages are in each state (the metrics' gauge)."""
    return dict(session.exec(select(Message.state, func.count()).group_by(Message.state)).all())


def oldest_waiting_by_line(session: Session) -> dict[str, datetime]:
    """Per line (by number), when its oldest message still waiting to go was created."""
    rows = session.exec(
        select(Line.phone, func.min(Message.created_at))
        .join(Line, col(Line.id) == Message.line_id)
        .where(col(Message.state).in_([s.value for s in WAITING_STATES]))
        .group_by(Line.phone)
    ).all()
    return {phone: when for phone, when in rows if when is not None}
