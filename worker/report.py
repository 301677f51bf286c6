"""Reading a message back: state, parts, history (for `outbox status`, the demo and tests)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from worker.store.attachments import file_facts
from worker.store.lines import line_of
from worker.store.models import Part, StatusEvent
from worker.store.reading import history_of, message_of, parts_of
from worker.store.states import Priority, State
from worker.zipwhip.codes import delivery_status, message_status


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def message_report(session: Session, message_id: int) -> dict[str, Any] | None:
    """Everything known about one message, as plain data; None if there is no such message."""
    message = message_of(session, message_id)
    if message is None:
        return None
    line = line_of(session, message.line_id)
    parts = parts_of(session, message_id)
    events = history_of(session, message_id)
    return {
        "id": message.id,
        "state": message.state,
        "priority": Priority(message.priority).label,
        "line": line.phone if line else None,
        "to": message.recipient,
        "created_at": _iso(message.created_at),
        "send_at": _iso(message.send_at),
        "expires_at": _iso(message.expires_at),
        "final_at": _iso(message.final_at),
        "error": {"code": message.error_code, "description": message.error_description}
        if message.error_description
        else None,
        "metadata": message.meta,
        "parts": [_part(session, part) for part in parts],
        "history": [_event(event, parts) for event in events],
    }


def _part(session: Session, part: Part) -> dict[str, Any]:
    files = file_facts(session, part.id or 0)
    return {
        "position": part.position + 1,
        "kind": part.kind,
        "state": part.state,
        "provider_id": part.provider_id,
        "status_code": part.status_code,
        "status_description": delivery_status(part.status_code).description
        if part.status_code is not None
        else None,
        "message_status": part.message_status,
        "message_status_description": message_status(part.message_status).description
        if part.message_status is not None
        else None,
        "attempts": part.attempts,
        "next_attempt_at": _iso(part.due_at) if part.state == State.RETRYING.value else None,
        "body_bytes": part.body_bytes,
        "payload_bytes": part.payload_bytes,
        "files": [
            {"name": f.filename, "type": f.content_type, "bytes": f.size, "from_body": f.from_body}
            for f in files
        ],
        "sent_at": _iso(part.sent_at),
        "final_at": _iso(part.final_at),
        "error": {"kind": part.error_kind, "code": part.error_code, "description": part.error_description}
        if part.error_description
        else None,
    }


def _event(event: StatusEvent, parts: Any) -> dict[str, Any]:
    position = next((p.position + 1 for p in parts if p.id == event.part_id), None)
    return {
        "at": _iso(event.at),
        "source": event.source,
        "part": position,
        "state": event.state,
        "code": event.code,
        "status_code": event.status_code,
        "message_status": event.message_status,
        "description": event.description,
    }
