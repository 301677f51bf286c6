"""What the outbox's PostgreSQL sessions are set up with."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from tests.support.services import throwaway_postgres
from tests.support.stack import wait_for
from worker.store.db import IDLE_IN_TRANSACTION_S, make_engine


@pytest.fixture
def postgres() -> Iterator[Engine]:
    with throwaway_postgres() as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def test_a_session_left_idle_in_a_transaction_is_ended_and_its_locks_freed(postgres: Engine) -> None:
    """A worker cut off mid-transaction must not hold its row locks until PostgreSQL notices it is
    gone (through a proxy: never)."""
    with postgres.connect() as idle, postgres.connect() as watcher:
        setting = idle.execute(text("SHOW idle_in_transaction_session_timeout")).scalar()
        assert setting == f"{IDLE_IN_TRANSACTION_S}s"
        # The same with a timeout short enough to watch: the server ends the session by itself.
        idle.execute(text("SET idle_in_transaction_session_timeout = 200"))
        idle.commit()
        pid = idle.execute(text("SELECT pg_backend_pid()")).scalar()  # a transaction, then silence

        def gone() -> bool:
            found = watcher.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid})
            watcher.commit()
            return found.scalar() == 0

        wait_for(gone, 30, 0.1, "PostgreSQL to end the session idle in its transaction")
        with pytest.raises(DBAPIError, match="idle-in-transaction timeout"):
            idle.execute(text("SELECT 1"))
