"""Idempotency keys: the same key with the same request is the same message; the same key with a
different request is refused (as payment APIs do), never answered with the id of a message that
says something else.

"The same request" is what was asked, as a digest stored on the message: the line, the recipient,
the text and the files (by their content, not their names) as planned, `send_at`, `expires_at` and
the metadata. A message stored before digests were (none) matches any request with its key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from worker.planning import Plan, Problem, reassemble


def request_digest(
    plan: Plan,
    send_at: datetime | None,
    expires_at: datetime | None,
    metadata: Mapping[str, Any] | None,
    callback: tuple[str | None, str | None] | None = None,
) -> str:
    """A sha256 of what was asked (times as UTC, metadata in key order: equal requests, equal digests;
    a status callback, from the HTTP API, counts when there is one)."""
    text, files = reassemble(plan)
    asked: dict[str, Any] = {
        "line": plan.line,
        "to": plan.to,
        "text": text,
        "files": [hashlib.sha256(f.data).hexdigest() for f in files],
        "send_at": send_at.isoformat() if send_at else None,
        "expires_at": expires_at.isoformat() if expires_at else None,
        "metadata": metadata or None,
    }
    if callback is not None and callback[0]:
        asked["callback"] = [callback[0], callback[1] or "final"]
    return hashlib.sha256(json.dumps(asked, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def used_before(key: str, message_id: int) -> Problem:
    """The problem with a key a stored message already has, for another request."""
    return Problem(
        "idempotency_key",
        f"{key!r:.60} already stands for message {message_id}, which asked for something else "
        "(another recipient, text, file, time or metadata); a new message needs a new key",
    )


def used_in_call(key: str, first: int) -> Problem:
    """The problem with a key an earlier text of the same call has, for another request."""
    return Problem(
        "idempotency_key", f"{key!r:.60} is also the key of messages[{first}], which asks for something else"
    )
