"""What the lines have sent: the parts polling, reconciliation, sync and the provider's webhooks look
for. A provider id is unique on its line only, so every look-up by id names the line too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from sqlmodel import Session, col, func, select

from worker.store.models import Message, Part
from worker.store.states import State


class DuePoll(NamedTuple):
    """A sent part due for a poll."""

    part_id: int
    message_id: int
    provider_id: str
    sent_at: datetime | None


def polls_due(session: Session, line_id: int, now: datetime, limit: int) -> list[DuePoll]:
    """The line's sent parts due for a poll, oldest sent first (at most `limit`: one poll's worth)."""
    rows = session.exec(
        select(Part.id, Part.message_id, Part.provider_id, Part.sent_at)
        .where(Part.line_id == line_id, Part.state == State.SENT.value, col(Part.next_poll_at) <= now)
        .where(col(Part.provider_id).is_not(None))
        .order_by(col(Part.sent_at))
        .limit(limit)
    ).all()
    return [
        DuePoll(part_id or 0, message_id, provider_id or "", sent_at)
        for part_id, message_id, provider_id, sent_at in rows
    ]


def sent_counts(session: Session, line_id: int, since: datetime, after: datetime) -> tuple[int, int]:
    """How many of our texts the line sent since `since`, and how many of those after `after` (one
    index range: the recent ones only); polling aims its paging with them."""
    query = select(func.count(), func.count().filter(col(Part.sent_at) > after)).where(
        Part.line_id == line_id, col(Part.sent_at) >= since
    )
    since_count, after_count = session.exec(query).one()
    return int(since_count), int(after_count)


def in_flight_with_ids(
    session: Session, line_id: int, provider_ids: Iterable[str]
) -> list[tuple[int, int, str]]:
    """The line's sent parts (part id, message id, provider id) among these provider ids: a page of
    the provider's list answers for all of them at once."""
    rows = session.exec(
        select(Part.id, Part.message_id, Part.provider_id)
        .where(Part.line_id == line_id, Part.state == State.SENT.value)
        .where(col(Part.provider_id).in_(list(provider_ids)))
    ).all()
    return [(part_id or 0, message_id, provider_id or "") for part_id, message_id, provider_id in rows]


def provider_ids_since(session: Session, line_id: int, since: datetime) -> frozenset[str]:
    """The provider ids of the line's texts sent since `since`: reconciliation never takes one of
    these for the lost send."""
    rows = session.exec(
        select(Part.provider_id).where(
            Part.line_id == line_id, col(Part.provider_id).is_not(None), col(Part.sent_at) >= since
        )
    ).all()
    return frozenset(p for p in rows if p)


def part_by_provider_id(session: Session, line_id: int, provider_id: str) -> Part | None:
    """Our part the provider knows by this id on the line, if it is ours."""
    return session.exec(select(Part).where(Part.line_id == line_id, Part.provider_id == provider_id)).first()


def awaiting_answer(session: Session, line_id: int, recipient: str, body: str) -> list[Part]:
    """The line's parts to `recipient` with this body whose send has no answer yet (being sent, or
    outcome unknown), oldest claim first: a text the provider says the line sent may be one of them."""
    return list(
        session.exec(
            select(Part)
            .join(Message, col(Message.id) == Part.message_id)
            .where(Part.line_id == line_id, col(Part.provider_id).is_(None))
            .where(col(Part.state).in_([State.SENDING.value, State.UNKNOWN.value]))
            .where(Message.recipient == recipient, Part.body == body)
            .order_by(col(Part.claimed_at))
        ).all()
    )
