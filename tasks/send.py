"""The send task: an id in, a summary out; the work is in `worker.sending`."""

from __future__ import annotations

from celery import Task

from tasks.retrying import INFRASTRUCTURE_ERRORS
from worker.app import app
from worker.constants import TASK_SEND
from worker.logs import message_context
from worker.runtime import get_runtime
from worker.sending import send_step


@app.task(
    name=TASK_SEND,
    bind=True,
    autoretry_for=INFRASTRUCTURE_ERRORS,
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=10,
)
def send(self: Task, message_id: int) -> str:
    """Send the message's next part (claim, call the provider, record the answer)."""
    with message_context(message_id):
        return send_step(get_runtime(), message_id, token=self.request.id)
