"""Rows for the store's tests: one-part texts on a fresh line, written directly (no planner, no
producer), with whatever columns a test needs set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from worker.store.db import transaction
from worker.store.models import Line, Message, Part


def stored_texts(
    engine: Engine,
    count: int = 1,
    message: Mapping[str, Any] | None = None,
    part: Mapping[str, Any] | None = None,
) -> list[tuple[int, int]]:
    """`count` one-part SMS on a new line, to different numbers: (message id, part id) of each.
    `message` and `part` set more columns on every one of them."""
    sms = {"position": 0, "kind": "sms", "body": "hi", "body_bytes": 2, "payload_bytes": 2}
    with transaction(engine) as session:
        line = Line(phone="+15556661234", username="5556661234", state="active")
        session.add(line)
        session.flush()
        line_id = line.id or 0
        messages = [
            Message(line_id=line_id, recipient=f"+1206555{n:04d}", **(message or {})) for n in range(count)
        ]
        session.add_all(messages)
        session.flush()
        parts = [Part(message_id=m.id or 0, line_id=line_id, **{**sms, **(part or {})}) for m in messages]
        session.add_all(parts)
        session.flush()
        return [(m.id or 0, p.id or 0) for m, p in zip(messages, parts, strict=True)]
