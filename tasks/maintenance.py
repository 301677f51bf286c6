"""Beat's jobs (queue `control`): release due work, sweep what was left behind.

Each runs under a Redis lock, kept alive while it works, so that two runs never overlap, even with
several workers, and a long run never fails for having outlived its lock.
"""

from __future__ import annotations

from collections.abc import Callable

from worker.app import app
from worker.infra.constants import TASK_RELEASE, TASK_SWEEP
from worker.infra.locks import exclusive
from worker.infra.runtime import Runtime, get_runtime
from worker.pipeline.release import release_due
from worker.pipeline.sweep import sweep as sweep_once

# Renewed every third of it while a run works: a run whose worker died frees its job this soon.
LOCK_TIMEOUT_S = 6


def _exclusively(name: str, job: Callable[[Runtime], dict[str, int]]) -> str:
    runtime = get_runtime()
    with exclusive(runtime.redis, name, LOCK_TIMEOUT_S) as mine:
        if not mine:
            return f"{name}: another run is under way"
        counts = job(runtime)
    return f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items())


@app.task(name=TASK_RELEASE, ignore_result=True)
def release() -> str:
    """Publish due sends (at each line's rate), polls and reconciliations."""
    return _exclusively("release", release_due)


@app.task(name=TASK_SWEEP, ignore_result=True)
def sweep() -> str:
    """Settle lost claims and expired messages; wake lines that logged in again."""
    return _exclusively("sweep", sweep_once)
