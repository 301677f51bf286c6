"""The Celery app. Tasks live in `tasks/`; they carry ids only and the database is the result."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import (
    beat_init,
    task_postrun,
    task_received,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)

from config.celery import celery_config
from config.settings import Settings, get_settings
from worker.constants import TASK_SEND
from worker.liveness import hold, identity, let_go, start_heartbeat, stop_heartbeat
from worker.logs import setup_logging
from worker.runtime import get_runtime, reset_runtime

app = Celery("outbox", include=["tasks.send", "tasks.status", "tasks.maintenance"])
app.config_from_object(celery_config(get_settings()))

log = logging.getLogger(__name__)


def configure(settings: Settings) -> None:
    """Point this process's app and runtime at other settings (tests, embedded use)."""
    app.conf.update(celery_config(settings))
    reset_runtime(settings)


@worker_init.connect
def _prepare_worker(**_: Any) -> None:
    """Logs set up and the schema brought up to date before any task runs."""
    setup_logging(get_settings().log_level)
    get_runtime().ready()


@beat_init.connect
def _prepare_beat(**_: Any) -> None:
    """Beat keeps Celery's own log format; the schema must exist before the first release job."""
    get_runtime().ready()


@worker_process_init.connect
def _fresh_resources(**_: Any) -> None:
    """A forked pool child builds its own pools instead of sharing the parent's sockets."""
    reset_runtime()


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    """The worker's alive key, from before it takes its first task until it stops."""
    runtime = get_runtime()
    start_heartbeat(runtime.redis, sender.hostname, runtime.settings.worker_liveness_ttl_s)


@worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    stop_heartbeat()


@task_received.connect
def _note_held(request: Any = None, **_: Any) -> None:
    """Note the texts of a send task this worker now holds (one waiting for its slot included), so
    that they come back at once if the worker dies with it."""
    if request is not None and request.name == TASK_SEND:
        _safely(hold, request.hostname, request.args[0] if request.args else [])


@task_postrun.connect
def _note_done(task: Any = None, args: Any = None, **_: Any) -> None:
    if task is not None and task.name == TASK_SEND and args:
        _safely(let_go, task.request.hostname, args[0])


def _safely(note: Any, hostname: str, ids: Any) -> None:
    """Bookkeeping never fails a task: without it a dead worker's texts come back at their lease."""
    try:
        note(get_runtime().redis, identity(hostname), [ids] if isinstance(ids, int) else list(ids))
    except Exception:
        log.warning("could not note the send task's texts in Redis", exc_info=True)
