"""Status callbacks to HTTP API clients (queue `callbacks`): a slow or failing receiver waits there,
never in the send or status queues."""

from __future__ import annotations

import requests

from worker.api.callbacks import BACKOFF_MAX_S, deliver, lost_messages, publish
from worker.app import app
from worker.infra.constants import TASK_CALLBACK, TASK_CALLBACK_SWEEP
from worker.infra.logs import message_context
from worker.infra.runtime import get_runtime
from worker.pipeline.retry import INFRASTRUCTURE_ERRORS


@app.task(name=TASK_CALLBACK, autoretry_for=INFRASTRUCTURE_ERRORS, retry_backoff=2, max_retries=10)
def callback(message_id: int) -> str:
    """POST a message's due status events to its callback URL, in order; come back for the rest."""
    with message_context(message_id):
        runtime = get_runtime()
        with requests.Session() as http:
            done = deliver(runtime.engine, runtime.redis, runtime.settings, message_id, http)
        if done.again_in_s is None:
            return f"message {message_id}: {done.told} status events told"
        callback.apply_async(args=[message_id], countdown=min(max(done.again_in_s, 0.05), BACKOFF_MAX_S))
        return f"message {message_id}: {done.told} told, next try in {done.again_in_s:.1f} s"


@app.task(name=TASK_CALLBACK_SWEEP, ignore_result=True)
def callback_sweep() -> str:
    """Publish again the callbacks whose task was lost."""
    lost = lost_messages(get_runtime().engine)
    publish(lost)
    return f"callbacks of {len(lost)} messages published again"
