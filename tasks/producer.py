"""`send_message` and `send_messages`: what application code calls to text someone, or many."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from worker.infra.runtime import get_runtime
from worker.planning import FileInput, IdempotencyConflict, PlanningError
from worker.producer.enqueue import TextRequest, enqueue, enqueue_many

InvalidMessage = PlanningError  # raised for bad input; `.problems` names every one

__all__ = ["IdempotencyConflict", "InvalidMessage", "TextRequest", "send_message", "send_messages"]


def send_message(
    line: str,
    to: str,
    body: str | None = None,
    attachments: Sequence[FileInput | str | Path] = (),
    *,
    idempotency_key: str | None = None,
    send_at: datetime | None = None,
    expires_at: datetime | None = None,
    metadata: Mapping[str, Any] | None = None,
    priority: str = "normal",
) -> int:
    """Queue a text from `line` to `to` and return the message id once it is durably recorded.

    `attachments` are paths (regular files, not links) or `FileInput(name, data)`. A body over the
    SMS limit goes as an MMS with a .txt attachment. The same `idempotency_key` on the same line
    with the same request returns the first message's id and sends nothing more; with a different
    request it raises `IdempotencyConflict`. `send_at` schedules it; `expires_at` rejects it if it
    could not go out in time. `priority` is "high" (takes the line's next slots, ahead of everything
    waiting there), "normal" or "bulk" (goes after both). Raises `InvalidMessage` (naming every
    problem, recording nothing) for bad input.
    """
    return enqueue(
        get_runtime().ready(),
        line,
        to,
        body,
        attachments,
        idempotency_key=idempotency_key,
        send_at=send_at,
        expires_at=expires_at,
        metadata=metadata,
        priority=priority,
    )


def send_messages(texts: Iterable[Mapping[str, Any] | TextRequest]) -> list[int]:
    """Queue many texts at once and return their message ids, in order, once all are recorded.

    Each text is a mapping with `send_message`'s argument names (`line`, `to`, `body`, `attachments`,
    `idempotency_key`, `send_at`, `expires_at`, `metadata`, `priority`) or a `TextRequest`. They share one
    transaction: a blast of thousands costs about what a few single calls do. A problem with any of
    them raises `InvalidMessage` naming each (`messages[3].to: ...`) and records none.
    """
    return enqueue_many(get_runtime().ready(), texts)
