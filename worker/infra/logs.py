"""Structured logs: one key=value line per event, with the message id, never a key or a body.

`message_context(id)` tags every line logged inside it (threads each have their own context).
A last-line filter masks anything shaped like a session key, should one ever reach a log call.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_message_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("message_id", default=None)

# Zipwhip session keys look like "<uuid>:<deviceId>".
SESSION_KEY_PATTERN = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}:\d+"
)


@contextmanager
def message_context(message_id: int | None) -> Iterator[None]:
    """Tag every log line inside the block with this message id."""
    token = _message_id.set(message_id)
    try:
        yield
    finally:
        _message_id.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "message_id"):
            record.message_id = _message_id.get()
        text = record.getMessage()
        masked = SESSION_KEY_PATTERN.sub("[session]", text)
        if masked != text:
            record.msg, record.args = masked, None
        return True


class _KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message_id = getattr(record, "message_id", None)
        fields = [
            f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
        ]
        if message_id is not None:
            fields.append(f"message_id={message_id}")
        fields.append(f'msg="{record.getMessage()}"')
        if record.exc_info:
            fields.append(f'exc="{self.formatException(record.exc_info)!r}"')
        # A traceback carries exception texts the filter never saw (a driver's error, say): mask the
        # whole line once more.
        return SESSION_KEY_PATTERN.sub("[session]", " ".join(fields))


def setup_logging(level: str = "INFO") -> None:
    """Send every logger's lines to stderr in the key=value shape (idempotent)."""
    root = logging.getLogger()
    if any(getattr(h, "_outbox", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_KeyValueFormatter())
    handler.addFilter(_ContextFilter())
    handler._outbox = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
