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
from worker.infra.brokers import quiet_delayed_delivery_notices
from worker.infra.constants import TASK_POLL_LINE, TASK_RECONCILE, TASK_SEND
from worker.infra.kombu_fixes import tolerate_a_lost_server_on_close
from worker.infra.logs import setup_logging
from worker.infra.runtime import get_runtime, reset_runtime
from worker.pipeline.dispatch import Backlogs
from worker.pipeline.liveness import forget_heartbeat, hold, identity, let_go, start_heartbeat, stop_heartbeat

tolerate_a_lost_server_on_close()
app = Celery("outbox", include=["tasks.send", "tasks.status", "tasks.maintenance", "tasks.callbacks"])
app.config_from_object(celery_config(get_settings()))
quiet_delayed_delivery_notices()

log = logging.getLogger(__name__)


def configure(settings: Settings) -> None:
    """Point this process's app and runtime at other settings (tests, embedded use)."""
    app.conf.update(celery_config(settings))
    # The app keeps the producer pool of the broker it first published to: forget it, or this process
    # would go on publishing to the old broker (kombu keeps one pool per broker URL for us).
    app._after_fork()
    app.__dict__.pop("amqp", None)  # its queues and routes were read from the previous settings
    Backlogs.forget()
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
    forget_heartbeat()
    reset_runtime()


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    """The worker's alive key, from before it takes its first task until it stops."""
    runtime = get_runtime()
    start_heartbeat(runtime.redis, sender.hostname, runtime.settings.worker_liveness_ttl_s)


@worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    stop_heartbeat()


# The tasks whose ids a worker notes while it holds them, and the kind it notes them under.
_HELD = {TASK_SEND: "send", TASK_RECONCILE: "reconcile", TASK_POLL_LINE: "poll"}


@task_received.connect
def _note_held(request: Any = None, **_: Any) -> None:
    """Note what the tasks this worker now holds are for (a send waiting for its slot included), so
    that it comes back at once if the worker dies with them."""
    if request is not None and request.name in _HELD and request.args:
        _safely(hold, request.hostname, _HELD[request.name], request.args[0])


@task_postrun.connect
def _note_done(task: Any = None, args: Any = None, **_: Any) -> None:
    if task is not None and task.name in _HELD and args:
        _safely(let_go, task.request.hostname, _HELD[task.name], args[0])


def _safely(note: Any, hostname: str, kind: str, ids: Any) -> None:
    """Bookkeeping never fails a task: without it a dead worker's work comes back at its lease."""
    try:
        note(get_runtime().redis, identity(hostname), kind, [ids] if isinstance(ids, int) else list(ids))
    except Exception:
        log.warning("could not note the task's ids in Redis", exc_info=True)
