"""The Celery app. Tasks live in `tasks/`; they carry ids only and the database is the result."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import beat_init, worker_init, worker_process_init

from config.celery import celery_config
from config.settings import Settings, get_settings
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
