"""The database engine, sessions and migrations (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, event, exc, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
IDLE_IN_TRANSACTION_S = 20  # see make_engine
PING_AFTER_IDLE_S = 1.0  # see _ping_after_idle
_IDLE_SINCE = "outbox_idle_since"  # in a pooled connection's info: when it was last checked in
TCP_KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


def make_engine(url: str, *, pool_size: int = 16) -> Engine:
    """An engine tuned for many short transactions from worker threads.

    Statement parameters never appear in its errors (`hide_parameters`): they hold session keys,
    recipients, bodies and metadata, and a database error is logged, retried and shown in Flower.
    """
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    # No server-side prepared statements: a plan cached while a table was small stays with the
    # connection, and after a blast of 10,000 texts one such plan took seconds where a fresh one
    # takes milliseconds (statistics lag a big insert; a fresh plan sees the table's real size).
    connect_args = {
        "prepare_threshold": None,
        # A worker cut off from the network in the middle of a transaction leaves its session idle
        # in that transaction, holding its row locks, until PostgreSQL notices the client is gone:
        # through a proxy or a NAT, never. Every other worker's claim or release run that needs one
        # of those rows waits as long. Our transactions are milliseconds between statements, never
        # a provider call; so such a session is ended after IDLE_IN_TRANSACTION_S and its locks freed.
        "options": f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_S * 1000}",
        # The other side of it: a client waiting for an answer the cut link lost waits for the
        # server's TCP retransmissions, which back off to minutes. Keepalive probes (and a bound on
        # unacknowledged writes) end such a connection in about half a minute instead.
        **TCP_KEEPALIVE,
    }
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args=connect_args,
        hide_parameters=True,
    )
    _ping_after_idle(engine)
    return engine


def _ping_after_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only if it sat idle for PING_AFTER_IDLE_S.

    `pool_pre_ping` pings on every checkout: a round trip and about 0.4 ms of CPU per transaction,
    where a poll or a small send task is a few transactions. A connection checked in a moment ago
    is almost surely alive; the ones that sat through a database restart or a cut link are found
    here and replaced before any statement runs. One that breaks between two close uses fails its
    statement instead: SQLAlchemy then replaces every connection of the pool, and the task's
    infrastructure retry (or the claim's reconciliation) takes it from there, as for any outage."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            why = type(error).__name__  # its text may name the server; the type says enough
            raise exc.DisconnectionError(f"a pooled connection did not answer ({why})") from None


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself (below) instead of pysqlite's deferred one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock up front: a deferred transaction that later writes can fail at once
        # with "database is locked" instead of waiting its turn.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work commits at the end of the block, or rolls back on error."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def answers(engine: Engine) -> bool:
    """Whether the database answers a trivial query now (the health check)."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration; safe when several processes start at once."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(727274)"))  # serialise concurrent starts
        try:
            config = AlembicConfig()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(727274)"))
                connection.commit()
