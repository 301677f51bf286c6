"""The lines' queues, read set-based: what the release job (and the producer, at commit) may hand
to the workers next. Every query here costs what is due or in flight, never the number of lines
that exist nor the history: a line with nothing due is never read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import Connection, Integer, case, cast, func, or_, select, text
from sqlmodel import Session, col

from worker.store.models import Line, Message, Part
from worker.store.states import IN_FLIGHT_SQL, NOT_YET_ACCEPTED, WAITING_STATES, LineState, State

_WAITING = [s.value for s in WAITING_STATES]
_UNACCEPTED = [s.value for s in NOT_YET_ACCEPTED]
# Literal, not bound: SQLite uses a partial index only for a WHERE it can see implies the index's.
_IN_FLIGHT = text(IN_FLIGHT_SQL.replace("state", "message.state"))
IN_CHUNK = 900  # values per IN list (SQLite's old limit is 999)


class Turn(NamedTuple):
    """What deciding a message's turn among the texts to its recipient needs."""

    message_id: int
    line_id: int
    recipient: str
    priority: int


@dataclass(frozen=True)
class Head:
    """A due part near the head of its line's queue, with what deciding its turn needs."""

    part_id: int
    message_id: int
    line_id: int
    position: int
    releases: int
    kind: str
    priority: int
    recipient: str
    rate_per_s: float | None  # the line's own rate, if it has one

    @property
    def turn(self) -> Turn:
        """Its message's place among the texts to its recipient."""
        return Turn(self.message_id, self.line_id, self.recipient, self.priority)


def due_heads(
    session: Session, now: datetime, *, default_rate: float, horizon_s: float, per_slot: int, unlimited: int
) -> list[Head]:
    """The first due parts of every active line with work, in queue order (priority, then age), in
    one query: as many per line as its rate could release within `horizon_s`, times `per_slot`
    (room for some to wait their turn behind an earlier text to the same recipient); `unlimited` for
    a line without a rate. Lines take turns: every line's first, then every line's second, ..."""
    rate = func.coalesce(col(Line.rate_per_s), default_rate)
    bound = case((rate <= 0, unlimited), else_=per_slot * (cast(rate * horizon_s, Integer) + 2))
    order = func.row_number().over(
        partition_by=col(Part.line_id), order_by=(col(Part.priority), col(Part.due_at), col(Part.id))
    )
    ranked = (
        select(
            col(Part.id).label("part_id"),
            col(Part.message_id),
            col(Part.line_id),
            col(Part.position),
            col(Part.releases),
            col(Part.kind),
            col(Part.priority),
            col(Message.recipient),
            col(Line.rate_per_s),
            order.label("rank"),
            bound.label("bound"),
        )
        .join(Message, col(Message.id) == col(Part.message_id))
        .join(Line, col(Line.id) == col(Part.line_id))
        .where(
            col(Part.state).in_(_WAITING), col(Part.due_at) <= now, col(Line.state) == LineState.ACTIVE.value
        )
        .subquery()
    )
    rows = session.execute(
        select(ranked)
        .where(ranked.c.rank <= ranked.c.bound)
        .order_by(ranked.c.rank, ranked.c.priority, ranked.c.line_id)
    ).all()
    return [Head(*row[:9]) for row in rows]


def waiting_behind_earlier(session: Session | Connection, turns: Sequence[Turn], now: datetime) -> set[int]:
    """Those of these messages that an earlier message to the same recipient on the same line, of
    the same or a more urgent priority, must go before (one recipient gets its texts in order)."""
    return {turn.message_id for turn in blocked_turns(session, turns, now)}


def blocked_turns(session: Session | Connection, turns: Sequence[Turn], now: datetime) -> set[Turn]:
    """Those of these turns that must wait for an earlier message in flight (see
    `waiting_behind_earlier`). One probe of the index of messages in flight per chunk: its cost
    follows what is in flight for these recipients, not the history nor the planner's statistics."""
    if not turns:
        return set()
    in_flight: dict[tuple[int, str], list[tuple[int, int]]] = defaultdict(list)
    pairs = sorted({(t.line_id, t.recipient) for t in turns})
    for start in range(0, len(pairs), IN_CHUNK):
        chunk = pairs[start : start + IN_CHUNK]
        rows = session.execute(
            select(
                col(Message.line_id), col(Message.recipient), col(Message.id), col(Message.priority)
            ).where(
                _IN_FLIGHT,
                col(Message.line_id).in_(sorted({line for line, _ in chunk})),
                col(Message.recipient).in_(sorted({recipient for _, recipient in chunk})),
                or_(col(Message.send_at).is_(None), col(Message.send_at) <= now),
            )
        ).all()
        for line_id, recipient, message_id, priority in rows:
            in_flight[(line_id, recipient)].append((message_id or 0, priority))
    return {
        t
        for t in turns
        if any(m < t.message_id and p <= t.priority for m, p in in_flight.get((t.line_id, t.recipient), ()))
    }


def waits_at_least_as_urgent(
    connection: Session | Connection, line_id: int, priority: int, now: datetime
) -> bool:
    """Whether a part of this priority or a more urgent one is due on the line and not yet released:
    a new text goes straight to a worker only if nothing waits ahead of it. The line's queue index
    finds the first such part at once, whatever the backlog."""
    query = (
        select(col(Part.id))
        .where(
            col(Part.line_id) == line_id,
            col(Part.state).in_(_WAITING),
            col(Part.priority) <= priority,
            col(Part.due_at) <= now,
            col(Part.dispatched_at).is_(None),
        )
        .limit(1)
    )
    return connection.execute(query).first() is not None


def behind_an_earlier_part(session: Session, heads: Sequence[Head]) -> set[int]:
    """Those of these parts whose message has an earlier part not accepted yet (parts go in order)."""
    later = [h for h in heads if h.position > 0]
    if not later:
        return set()
    pending = {
        (message_id, position)
        for message_id, position in session.execute(
            select(col(Part.message_id), col(Part.position)).where(
                col(Part.message_id).in_(sorted({h.message_id for h in later})),
                col(Part.state).in_(_UNACCEPTED),
            )
        ).all()
    }
    return {h.part_id for h in later if any((h.message_id, p) in pending for p in range(h.position))}


def released_unclaimed(session: Session) -> int:
    """Parts released to send tasks that no worker has claimed yet: the send queue's depth."""
    query = (
        select(func.count())
        .select_from(Part)
        .where(col(Part.dispatched_at).is_not(None), col(Part.state).in_(_WAITING))
    )
    return int(session.execute(query).scalar_one())


def released_before(session: Session, before: datetime, limit: int = 5000) -> set[int]:
    """The messages whose parts were released before `before` and are still unclaimed."""
    query = select(col(Part.message_id)).where(
        col(Part.dispatched_at) < before, col(Part.state).in_(_WAITING)
    )
    return set(session.execute(query.limit(limit)).scalars().all())


def lines_to_poll(session: Session, now: datetime, quiet_s: float) -> list[int]:
    """Lines with sent parts due for a poll, polled once for many texts: when the oldest due one is
    `quiet_s` overdue, or the line has sent nothing for `quiet_s` (texts sent a moment apart are
    then polled by one call instead of one call each)."""
    settled = now - timedelta(seconds=quiet_s)
    rows = session.execute(
        select(col(Part.line_id), func.min(col(Part.next_poll_at)), func.max(col(Part.sent_at)))
        .where(col(Part.state) == State.SENT.value, col(Part.next_poll_at).is_not(None))
        .group_by(col(Part.line_id))
        .having(func.min(col(Part.next_poll_at)) <= now)
    ).all()
    return [
        line_id
        for line_id, oldest_due, newest_sent in rows
        if _aware(oldest_due, now) <= settled or newest_sent is None or _aware(newest_sent, now) <= settled
    ]


def due_reconciliations(session: Session, now: datetime, limit: int) -> list[Part]:
    """Parts with an unknown outcome due to be looked for at the provider, oldest first."""
    query = (
        select(Part)
        .where(
            col(Part.state) == State.UNKNOWN.value, col(Part.provider_id).is_(None), col(Part.due_at) <= now
        )
        .order_by(col(Part.due_at))
        .limit(limit)
    )
    return list(session.execute(query).scalars().all())


def claims_of(session: Session) -> set[str]:
    """The workers holding claims (parts being sent)."""
    query = select(col(Part.claimed_by)).where(col(Part.state) == State.SENDING.value).distinct()
    return {name for name in session.execute(query).scalars().all() if name}


def claimed_by(session: Session, workers: Iterable[str]) -> list[int]:
    """The messages whose parts these workers have claimed."""
    names = sorted(set(workers))
    if not names:
        return []
    query = select(col(Part.message_id)).where(
        col(Part.state) == State.SENDING.value, col(Part.claimed_by).in_(names)
    )
    return sorted(set(session.execute(query).scalars().all()))


def claims_older_than(session: Session, cutoff: datetime, limit: int) -> list[int]:
    """The messages with a part claimed for sending before `cutoff`: its worker died mid-call."""
    query = select(col(Part.message_id)).where(
        col(Part.state) == State.SENDING.value, col(Part.claimed_at) < cutoff
    )
    return list(session.execute(query.limit(limit)).scalars().all())


def expired_unsent(session: Session, now: datetime, limit: int) -> list[int]:
    """The messages past their `expires_at` with a part still waiting to be sent: not sent late."""
    query = (
        select(col(Part.message_id))
        .join(Message, col(Message.id) == col(Part.message_id))
        .where(col(Part.state).in_(_WAITING), col(Message.expires_at) <= now)
    )
    return list(session.execute(query.limit(limit)).scalars().all())


def _aware(value: datetime, like: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=like.tzinfo)
