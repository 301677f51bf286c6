"""A producer's database, on SQLite and PostgreSQL, with two logged-in lines."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from config.settings import settings_from
from worker.app import configure
from worker.infra.runtime import Runtime, get_runtime
from worker.store.db import migrate, transaction
from worker.store.models import Line

LINE, OTHER = "5556661234", "5556667777"


@pytest.fixture
def runtime(database_url: str, broker_url: str) -> Iterator[Runtime]:
    configure(settings_from({"OUTBOX_BROKER_URL": broker_url, "OUTBOX_DATABASE_URL": database_url}))
    runtime = get_runtime()
    migrate(runtime.engine)
    with transaction(runtime.engine) as session:
        for number in (LINE, OTHER):
            session.add(Line(phone="+1" + number, username=number, session_key="k:1", state="active"))
    yield runtime
    runtime.close()
