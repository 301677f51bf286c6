"""What the HTTP API answers about messages: one in full (as `outbox status --json` shows it, with
its status callback), or pages of short ones."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from worker.report import message_report
from worker.store.models import Message
from worker.store.reading import PageFilter, message_of, messages_page, states_of
from worker.store.states import Priority

PAGE_DEFAULT = 50
PAGE_MAX = 200


def message_view(engine: Engine, message_id: int, lines: frozenset[str] | None) -> dict[str, Any] | None:
    """The message as GET shows it; None if there is none the caller may see (a key scoped to
    lines sees nothing of the others: not even that a message exists)."""
    with Session(engine) as session:
        report = message_report(session, message_id)
        message = message_of(session, message_id) if report else None
    if report is None or message is None or (lines is not None and report["line"] not in lines):
        return None
    report["status_callback"] = (
        {"url": message.callback_url, "events": message.callback_events} if message.callback_url else None
    )
    return report


def created_before(engine: Engine, message_id: int, moment: datetime) -> bool:
    """True if the message was recorded before `moment` (an idempotent replay found it)."""
    with Session(engine) as session:
        message = message_of(session, message_id)
    if message is None:
        return False
    created = message.created_at
    return (created if created.tzinfo else created.replace(tzinfo=moment.tzinfo)) < moment


def states(engine: Engine, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Each message's id and state, in the order given (what a batch answers)."""
    with Session(engine) as session:
        found = states_of(session, ids)
    return [{"id": i, "state": found.get(i)} for i in ids]


def page(
    engine: Engine,
    lines: frozenset[str] | None,
    *,
    line: str | None,
    state: str | None,
    since: datetime | None,
    after_id: int,
    limit: int,
) -> dict[str, Any]:
    """Messages in id order after a cursor, filtered; and the cursor of the next page (None: last)."""
    wanted = PageFilter(lines, line, state, since)
    with Session(engine) as session:
        rows = messages_page(session, wanted, after_id, limit + 1)
    items = [_summary(message, phone) for message, phone in rows[:limit]]
    more = len(rows) > limit
    return {"messages": items, "next_cursor": str(items[-1]["id"]) if more and items else None}


def _summary(message: Message, phone: str) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": message.id,
        "state": message.state,
        "priority": Priority(message.priority).label,
        "line": phone,
        "to": message.recipient,
        "created_at": iso(message.created_at),
        "send_at": iso(message.send_at),
        "final_at": iso(message.final_at),
        "metadata": message.meta,
    }
