"""Fixtures shared by every test folder: real Redis and PostgreSQL, fresh databases. And how `make
test` runs them on two processes (pytest-xdist, `--dist loadgroup`): the end-to-end tests on Redis
one after another in one process, and every test on RabbitMQ one after another too (a chaos scenario
stops and starts the server under the others), beside them; the other tests fill in wherever a
process is free. Two end-to-end tests at a time is what a busy host does to them anyway (they are
checked beside two CPU hogs); more would measure each other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.support.rabbitmq import rabbitmq_problem, throwaway_vhost
from tests.support.services import claimed_redis_db, missing, redis_ping, redis_url, throwaway_postgres
from worker.store.db import make_engine, migrate

REDIS_GROUP, RABBITMQ_GROUP = "end-to-end on Redis", "on RabbitMQ"
CHAOS_FIGURE = "chaos figure"  # a scenario's figures travel in its report (from an xdist process too)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each end-to-end test, and each test on RabbitMQ, in its group (see the module's docstring)."""
    for item in items:
        if _on_rabbitmq(item):
            item.add_marker(pytest.mark.xdist_group(RABBITMQ_GROUP))
        elif item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.xdist_group(REDIS_GROUP))


def _on_rabbitmq(item: pytest.Item) -> bool:
    """A test given the RabbitMQ vhost, parametrized to run on RabbitMQ, or named for it."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec else ()
    return (
        "amqp_url" in getattr(item, "fixturenames", ())
        or "amqp" in [value for value in params if isinstance(value, str)]
        or "rabbitmq" in item.nodeid.lower()
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":  # every phase's report carries the test's properties
        FIGURES.extend(str(value) for name, value in report.user_properties if name == CHAOS_FIGURE)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print every chaos scenario's figures at the end of the run (also when they pass)."""
    if FIGURES:
        terminalreporter.section("chaos figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


FIGURES: list[str] = []


@pytest.fixture(scope="session")
def redis_db() -> Iterator[int]:
    """A Redis database number of this test run's own."""
    error = redis_ping()
    if error is not None:
        missing("Redis", error)
    with claimed_redis_db() as number:
        yield number


@pytest.fixture(scope="session")
def broker_url(redis_db: int) -> str:
    """The broker URL for this test run."""
    return redis_url(redis_db)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ vhost of this test run's own (deleted at the end): its broker URL."""
    problem = rabbitmq_problem()
    if problem is not None:
        missing("RabbitMQ", problem)
    with throwaway_vhost() as url:
        yield url


@pytest.fixture(scope="session")
def amqp_env(amqp_url: str, broker_url: str) -> dict[str, str]:
    """The settings of a deployment on RabbitMQ: the broker there, rate limits and locks in Redis."""
    return {"OUTBOX_BROKER_URL": amqp_url, "OUTBOX_REDIS_URL": broker_url}


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'outbox.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that takes it runs on SQLite and again on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'outbox.db'}"
        return
    with throwaway_postgres() as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated database on both backends."""
    engine = make_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()
