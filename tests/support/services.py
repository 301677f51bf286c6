"""The real servers the tests use: Redis and PostgreSQL on this machine.

Each test run claims its own Redis database number (so runs in parallel never meet) and creates a
throwaway PostgreSQL database. Where a server is missing, tests are skipped with a clear reason on
a developer's machine and fail in CI (CI=true), so a green CI never hides a missing service.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from sqlalchemy import create_engine, text

REDIS_HOST = os.environ.get("OUTBOX_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("OUTBOX_TEST_REDIS_PORT", "6379"))
POSTGRES_ADMIN_URL = os.environ.get(
    "OUTBOX_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
CLAIM_PREFIX = "outbox-test:db-claim:"


def missing(service: str, why: object) -> None:
    """Skip locally, fail in CI: a test that needs a server never passes silently without it."""
    message = f"{service} is not reachable ({why}); start it (see the README) to run this test"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def redis_ping() -> Exception | None:
    """None if Redis answers, else the error."""
    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=2).ping()
        return None
    except redis.RedisError as error:
        return error


@contextmanager
def claimed_redis_db() -> Iterator[int]:
    """A Redis database number (1-15) no other test run is using; emptied before and after."""
    admin = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0, socket_timeout=5)
    token = uuid.uuid4().hex
    for number in range(1, 16):
        if admin.set(f"{CLAIM_PREFIX}{number}", token, nx=True, ex=6 * 3600):
            break
    else:
        raise RuntimeError("every Redis database 1-15 is claimed by another test run")
    db = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number)
    db.flushdb()
    try:
        yield number
    finally:
        db.flushdb()
        if admin.get(f"{CLAIM_PREFIX}{number}") == token.encode():
            admin.delete(f"{CLAIM_PREFIX}{number}")


def redis_url(db: int) -> str:
    """The URL of a claimed Redis database."""
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; yields its URL."""
    name = f"outbox_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        admin.dispose()
        missing("PostgreSQL", error)
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
