"""Beat's jobs (queue `control`): release due work, sweep what was left behind.

Each runs under a Redis lock so that two runs never overlap, even with several workers.
"""

from __future__ import annotations

from collections.abc import Callable

from worker.app import app
from worker.constants import LOCK_KEY, TASK_RELEASE, TASK_SWEEP
from worker.release import release_due
from worker.runtime import Runtime, get_runtime
from worker.sweeper import sweep as sweep_once

LOCK_TIMEOUT_S = 60


def _exclusively(name: str, job: Callable[[Runtime], dict[str, int]]) -> str:
    runtime = get_runtime()
    lock = runtime.redis.lock(LOCK_KEY + name, timeout=LOCK_TIMEOUT_S, blocking=False)
    if not lock.acquire():
        return f"{name}: another run is under way"
    try:
        counts = job(runtime)
    finally:
        lock.release()
    return f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items())


@app.task(name=TASK_RELEASE, ignore_result=True)
def release() -> str:
    """Publish due sends (at each line's rate), polls and reconciliations."""
    return _exclusively("release", release_due)


@app.task(name=TASK_SWEEP, ignore_result=True)
def sweep() -> str:
    """Settle lost claims and expired messages; wake lines that logged in again."""
    return _exclusively("sweep", sweep_once)
