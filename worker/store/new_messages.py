"""Writing new messages: what a producer looks up (the line, its opt-outs, idempotency keys) and
the inserts, one statement per table however many messages (a producer's cost is its round trips)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert
from sqlalchemy import select as sa_select  # sqlmodel's select takes at most four columns
from sqlmodel import col, select

from worker.planning import Attachment as PlannedFile
from worker.planning import Plan, PlannedPart
from worker.store.models import Attachment, Line, Message, OptOut, Part, StatusEvent
from worker.store.states import LineState, Priority, Source, State


@dataclass(frozen=True)
class Origin:
    """Who sent a message through the HTTP API, and where its status changes are to be POSTed."""

    api_key_id: int | None = None
    callback_url: str | None = None
    callback_events: str | None = None  # "all" or "final"


@dataclass(frozen=True)
class NewMessage:
    """A checked, planned message to write for a line."""

    line_id: int
    plan: Plan
    idempotency_key: str | None
    send_at: datetime | None
    expires_at: datetime | None
    metadata: Mapping[str, Any] | None
    priority: int = Priority.NORMAL
    request_digest: str | None = None  # what was asked, when an idempotency key is given
    origin: Origin | None = None

    def due(self, now: datetime) -> datetime:
        """When its first part is due: now, or its scheduled time."""
        return self.send_at if self.send_at and self.send_at > now else now


@dataclass(frozen=True)
class LineFacts:
    """What a producer must know of a line before writing to it."""

    line_id: int
    opted_out: set[str]  # of the recipients asked about
    existing: dict[str, tuple[int, str | None]]  # (message id, request digest) by idempotency key
    can_send: bool = False  # logged in and active: its texts may be dispatched at commit
    rate_per_s: float | None = None  # its own rate, if it has one


# Built once: building them on every call showed in the producer's profile.
_LINE_AND_OPT_OUTS = (
    sa_select(
        col(Line.id),
        col(OptOut.number),
        col(Line.state),
        col(Line.session_key).is_not(None),
        col(Line.rate_per_s),
    )
    .outerjoin(
        OptOut,
        (col(OptOut.line_id) == col(Line.id))
        & col(OptOut.number).in_(bindparam("recipients", expanding=True))
        & col(OptOut.lifted_at).is_(None),
    )
    .where(col(Line.phone) == bindparam("phone"))
)
_EXISTING_KEYS = select(Message.idempotency_key, Message.id, Message.request_digest).where(
    Message.line_id == bindparam("line_id"),
    col(Message.idempotency_key).in_(bindparam("keys", expanding=True)),
)
_INSERT_MESSAGES = insert(Message).returning(col(Message.id), sort_by_parameter_order=True)
_INSERT_PARTS = insert(Part).returning(col(Part.id), sort_by_parameter_order=True)


def look_up_line(
    connection: Connection, number: str, recipients: list[str], keys: list[str]
) -> LineFacts | None:
    """The line with this number, which of these recipients opted out of it, and which of these
    idempotency keys it has seen (two queries at most); None for an unknown line."""
    rows = connection.execute(_LINE_AND_OPT_OUTS, {"phone": number, "recipients": recipients}).all()
    if not rows:
        return None
    line_id, _, state, has_key, rate = rows[0]
    existing = connection.execute(_EXISTING_KEYS, {"line_id": line_id, "keys": keys}).all() if keys else []
    can_send = state == LineState.ACTIVE.value and bool(has_key)
    opted_out = {row[1] for row in rows if row[1]}
    found = {k: (int(i), d) for k, i, d in existing}
    return LineFacts(int(line_id or 0), opted_out, found, can_send, rate)


def insert_messages(
    connection: Connection,
    items: list[NewMessage],
    now: datetime,
    leased: Mapping[int, datetime] | None = None,
) -> list[int]:
    """The messages, their parts, their files and their first history rows: one statement per table
    (many rows each), so a blast costs about what one message does. `leased` (by index in `items`)
    are dispatched at commit: their first part is written already released, due again at its lease."""
    if not items:
        return []
    rows = [_message_row(m, now) for m in items]
    message_ids = [int(i or 0) for i in connection.execute(_INSERT_MESSAGES, rows).scalars()]
    parts, files = [], []
    for n, (message_id, m) in enumerate(zip(message_ids, items, strict=True)):
        for planned in m.plan.parts:
            row = _part_row(message_id, m, planned, m.due(now))
            if planned.index == 0 and leased and n in leased:
                row.update(dispatched_at=now, due_at=leased[n], releases=1)
            parts.append(row)
            files.append(planned.attachments)
    if any(files):
        part_ids = [int(i or 0) for i in connection.execute(_INSERT_PARTS, parts).scalars()]
        files_rows = [
            _file_row(part_id, n, file)
            for part_id, attached in zip(part_ids, files, strict=True)
            for n, file in enumerate(attached)
        ]
        connection.execute(insert(Attachment), files_rows)
    else:
        connection.execute(insert(Part), parts)
    events = [_event_row(message_id, m, now) for message_id, m in zip(message_ids, items, strict=True)]
    connection.execute(insert(StatusEvent), events)
    return message_ids


def _message_row(c: NewMessage, now: datetime) -> dict[str, Any]:
    return {
        "line_id": c.line_id,
        "recipient": c.plan.to,
        "state": State.QUEUED.value,
        "idempotency_key": c.idempotency_key,
        "request_digest": c.request_digest,
        "send_at": c.send_at,
        "expires_at": c.expires_at,
        "meta": dict(c.metadata) if c.metadata else None,
        "priority": c.priority,
        "api_key_id": c.origin.api_key_id if c.origin else None,
        "callback_url": c.origin.callback_url if c.origin else None,
        "callback_events": c.origin.callback_events if c.origin else None,
        "created_at": now,
        "updated_at": now,
    }


def _part_row(message_id: int, m: NewMessage, planned: PlannedPart, due: datetime) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "line_id": m.line_id,
        "priority": m.priority,
        "position": planned.index,
        "kind": planned.kind.value,
        "body": planned.body,
        "body_bytes": planned.body_bytes,
        "payload_bytes": planned.payload_bytes,
        "state": State.QUEUED.value,
        "attempts": 0,
        "releases": 0,
        "poll_count": 0,
        "due_at": due,
        "dispatched_at": None,
    }


def _file_row(part_id: int, position: int, file: PlannedFile) -> dict[str, Any]:
    return {
        "part_id": part_id,
        "position": position,
        "filename": file.filename,
        "content_type": file.content_type,
        "size": file.size,
        "from_body": file.from_body,
        "data": file.data,
    }


def _event_row(message_id: int, c: NewMessage, now: datetime) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "at": now,
        "source": Source.ENQUEUE.value,
        "state": State.QUEUED.value,
        "description": "planned: " + ", ".join(p.kind.value for p in c.plan.parts),
    }
