"""A runtime on real Redis and both databases, with two logged-in lines, for the release job and
the dispatcher (the broker is this test run's own Redis database)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import update
from sqlmodel import Session

from config.settings import settings_from
from tests.support.services import REDIS_HOST, REDIS_PORT
from worker.app import configure
from worker.infra.broker import PRIORITY_SEPARATOR
from worker.infra.constants import SEND_QUEUE
from worker.infra.runtime import Runtime, get_runtime
from worker.store.db import migrate, transaction
from worker.store.models import Line

LINE, OTHER = "5556661234", "5556667777"


def make_runtime(database_url: str, redis_db: int, **env: str) -> Runtime:
    url = f"redis://127.0.0.1:6379/{redis_db}"
    configure(settings_from({"OUTBOX_BROKER_URL": url, "OUTBOX_DATABASE_URL": database_url, **env}))
    runtime = get_runtime()
    migrate(runtime.engine)
    runtime.redis.flushdb()
    with transaction(runtime.engine) as session:
        for number in (LINE, OTHER):
            session.add(Line(phone="+1" + number, username=number, session_key="k:1", state="active"))
    return runtime


@pytest.fixture
def runtime(database_url: str, redis_db: int) -> Iterator[Runtime]:
    """The release job alone: nothing goes to the workers at commit."""
    runtime = make_runtime(database_url, redis_db, OUTBOX_DISPATCH_AT_COMMIT="false")
    yield runtime
    runtime.redis.flushdb()
    runtime.close()


@pytest.fixture
def dispatching(database_url: str, redis_db: int) -> Iterator[Runtime]:
    """As deployed: a text its line can send at once goes to the workers at commit."""
    runtime = make_runtime(database_url, redis_db)
    yield runtime
    runtime.redis.flushdb()
    runtime.close()


def set_rates(runtime: Runtime, rate: float | None) -> None:
    with Session(runtime.engine) as session:
        session.execute(update(Line).values(rate_per_s=rate))
        session.commit()


def published(runtime: Runtime) -> list[list[int]]:
    """The message ids of every send task in the broker, most urgent first, then oldest first (kombu
    keeps a list per priority and pushes on the left)."""
    return [ids for _, ids in published_with_priority(runtime)]


def published_with_priority(runtime: Runtime) -> list[tuple[int, list[int]]]:
    """(broker priority, message ids) of every send task in the broker, as `published` orders them."""
    tasks = []
    for priority in (0, 3, 6, 9):
        key = SEND_QUEUE if priority == 0 else f"{SEND_QUEUE}{PRIORITY_SEPARATOR}{priority}"
        for raw in reversed(runtime.redis.lrange(key, 0, -1)):
            args, _, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
            tasks.append((priority, args[0]))
    return tasks


@pytest.fixture
def client(redis_db: int) -> Iterator[redis.Redis]:
    """A plain client on this test run's Redis database, emptied before and after."""
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db)
    client.flushdb()
    yield client
    client.flushdb()
