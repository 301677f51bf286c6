"""The PostgreSQL engine pings a pooled connection only after it sat idle, and a dead one is replaced
(on the real server: its session ended by `pg_terminate_backend`, as a restart or a cut link ends it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, exc, text

import worker.store.db as db
from tests.support.services import POSTGRES_ADMIN_URL, throwaway_postgres
from worker.store.db import make_engine, transaction


@pytest.fixture
def engine() -> Iterator[Engine]:
    with throwaway_postgres() as url:
        engine = make_engine(url, pool_size=1)
        yield engine
        engine.dispose()


def _backend(engine: Engine) -> int:
    with transaction(engine) as session:
        return int(session.connection().execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        assert connection.execute(text(f"SELECT pg_terminate_backend({pid})")).scalar_one()
    admin.dispose()


def _count_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    real = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return pings


def test_a_connection_used_a_moment_ago_is_not_pinged_one_idle_for_long_is(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = _count_pings(engine, monkeypatch)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 3600.0)
    for _ in range(5):
        _backend(engine)
    assert pings == []  # pool_pre_ping would have pinged four times (each checkout after the first)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)  # every connection now counts as idle for long
    _backend(engine)
    assert pings == [1]


def test_a_connection_that_died_while_idle_is_replaced_before_any_statement(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)
    first = _backend(engine)
    _terminate(first)
    assert _backend(engine) != first  # no error: the ping found it dead and the pool connected anew


def test_a_connection_that_died_between_close_uses_fails_once_then_the_pool_is_fresh(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 3600.0)
    first = _backend(engine)
    _terminate(first)
    with pytest.raises(exc.OperationalError) as raised:
        _backend(engine)
    assert raised.value.connection_invalidated  # what the tasks' infrastructure retry is for
    assert _backend(engine) != first
