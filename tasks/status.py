"""Delivery tracking and reconciliation tasks (queue `status`)."""

from __future__ import annotations

from tasks.retrying import INFRASTRUCTURE_ERRORS
from worker.app import app
from worker.constants import TASK_POLL, TASK_RECONCILE
from worker.logs import message_context
from worker.reconcile import reconcile_step
from worker.runtime import get_runtime
from worker.tracking import poll_step

_RETRY = {
    "autoretry_for": INFRASTRUCTURE_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "max_retries": 10,
}


@app.task(name=TASK_POLL, **_RETRY)
def poll_status(message_id: int) -> str:
    """Ask the provider for the delivery status of the message's sent parts."""
    with message_context(message_id):
        return poll_step(get_runtime(), message_id)


@app.task(name=TASK_RECONCILE, **_RETRY)
def reconcile(message_id: int) -> str:
    """Find out whether a send with an unknown outcome reached the provider."""
    with message_context(message_id):
        return reconcile_step(get_runtime(), message_id)
