"""The send task: message ids in, a summary out; the work is in `worker.pipeline.send`."""

from __future__ import annotations

from celery import Task

from worker.app import app
from worker.infra.constants import TASK_SEND
from worker.infra.runtime import get_runtime
from worker.pipeline.liveness import identity
from worker.pipeline.retry import INFRASTRUCTURE_ERRORS
from worker.pipeline.send import send_step


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
