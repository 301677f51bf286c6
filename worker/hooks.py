"""Telling the application about final outcomes: a Python callable or a Celery task it names."""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)


def notify_final(hook: str | None, message_id: int, state: str) -> None:
    """Call the configured hook with (message_id, state); a failing hook never fails the send."""
    if not hook:
        return
    try:
        if ":" in hook:
            module_name, func_name = hook.split(":", 1)
            getattr(importlib.import_module(module_name), func_name)(message_id, state)
        else:
            from worker.app import app

            app.send_task(hook, args=[message_id, state])
    except Exception:
        log.exception("outcome hook %s failed for message %s", hook, message_id)
