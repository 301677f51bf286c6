"""Delivery tracking and reconciliation tasks (queue `status`)."""

from __future__ import annotations

from worker.app import app
from worker.callbacks import notify_final, notify_inbound
from worker.infra.constants import (
    POLL_LEASE_KEY,
    TASK_INBOUND,
    TASK_NOTIFY,
    TASK_POLL_LINE,
    TASK_RECONCILE,
)
from worker.infra.logs import message_context
from worker.infra.runtime import get_runtime
from worker.pipeline.reconcile import reconcile_step
from worker.pipeline.retry import INFRASTRUCTURE_ERRORS
from worker.pipeline.track import poll_line_step
from worker.store.db import transaction
from worker.store.reading import message_state

_RETRY = {
    "autoretry_for": INFRASTRUCTURE_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "max_retries": 10,
}


@app.task(name=TASK_POLL_LINE, **_RETRY)
def poll_line(line_ids: list[int]) -> str:
    """Ask the provider for the delivery status of every due part of a few lines, in as few calls as
    it takes (each line is listed once for all its due parts)."""
    runtime = get_runtime()
    summaries = []
    for line_id in line_ids:
        try:
            summaries.append(poll_line_step(runtime, line_id))
        finally:
            runtime.redis.delete(f"{POLL_LEASE_KEY}{line_id}")  # the next release may poll the line again
    return "; ".join(summaries)


@app.task(name=TASK_RECONCILE, **_RETRY)
def reconcile(message_ids: list[int] | int) -> str:
    """Find out whether sends with an unknown outcome reached the provider (one search a line). A
    single id is a task published before batches (its message is reconciled alone)."""
    if isinstance(message_ids, int):
        with message_context(message_ids):
            return reconcile_step(get_runtime(), message_ids)
    return reconcile_step(get_runtime(), message_ids)


@app.task(name=TASK_NOTIFY, **_RETRY)
def notify(message_id: int) -> str:
    """Tell the application a message is final (when the web process learned it from a webhook)."""
    with message_context(message_id):
        runtime = get_runtime()
        with transaction(runtime.engine) as session:
            state = message_state(session, message_id)
        if state is None:
            return f"message {message_id}: not found"
        notify_final(runtime.settings.outcome_hook, message_id, state)
        return f"message {message_id}: application told {state}"


@app.task(name=TASK_INBOUND, **_RETRY)
def inbound(row_id: int) -> str:
    """Tell the application a text arrived (its hook gets the stored id)."""
    runtime = get_runtime()
    notify_inbound(runtime, row_id)
    return f"inbound {row_id}: application told"
