"""Telling the application about final outcomes: a Python callable or a Celery task it names."""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

from sqlmodel import Session

from worker.inbound.messages import inbound_view
from worker.store.inbox import received_row
from worker.store.lines import line_of

if TYPE_CHECKING:
    from worker.infra.runtime import Runtime

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


def notify_inbound(runtime: Runtime, row_id: int) -> None:
    """Give the inbound hook a received text: a callable gets its details, a task name its id."""
    hook = runtime.settings.inbound_hook
    if not hook:
        return
    try:
        if ":" not in hook:
            from worker.app import app

            app.send_task(hook, args=[row_id])
            return
        with Session(runtime.engine) as session:
            row = received_row(session, row_id)
            line = line_of(session, row.line_id) if row else None
            if row is None or line is None:
                return
            view = inbound_view(row, line)
        module_name, func_name = hook.split(":", 1)
        getattr(importlib.import_module(module_name), func_name)(view)
    except Exception:
        log.exception("inbound hook %s failed for inbound %s", hook, row_id)
