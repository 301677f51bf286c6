"""The send task: message ids in, a summary out; the work is in `worker.send`."""

from __future__ import annotations

from celery import Task

from worker.app import app
from worker.constants import TASK_SEND
from worker.liveness import identity
from worker.retry import INFRASTRUCTURE_ERRORS
from worker.runtime import get_runtime
from worker.send import send_step


@app.task(
    name=TASK_SEND,
    bind=True,
    autoretry_for=INFRASTRUCTURE_ERRORS,
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=10,
)
def send(self: Task, message_ids: list[int]) -> str:
    """Send the next part of each message (claim, call the provider, record the answers)."""
    worker = identity(self.request.hostname or "")
    return send_step(get_runtime(), message_ids, token=self.request.id, worker=worker)
