"""The HTTP API in process: the web app on a fresh database with two logged-in lines, and keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func
from sqlmodel import Session, select
from starlette.testclient import TestClient

from config.settings import settings_from
from worker.api.keys import NewKey, create_key
from worker.app import configure
from worker.infra.runtime import Runtime, get_runtime
from worker.store.db import migrate, transaction
from worker.store.models import Attachment, CallbackDelivery, Line, Message, Part, StatusEvent
from worker.web.app import create_app

LINE, OTHER = "5556661234", "5556667777"


@dataclass
class Api:
    """A client of the app, and the keys made for it."""

    client: TestClient
    runtime: Runtime
    key: NewKey  # every line
    scoped: NewKey  # LINE only

    def auth(self, key: NewKey | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {(key or self.key).key}"}

    def rows(self) -> dict[str, int]:
        """How many rows each table of messages holds (what a refused request must not change)."""
        with Session(self.runtime.engine) as session:
            return {
                t.__name__: int(session.exec(select(func.count()).select_from(t)).one())
                for t in (Message, Part, Attachment, StatusEvent, CallbackDelivery)
            }


def make_api(database_url: str, broker_url: str, **env: str) -> Iterator[Api]:
    settings = {
        "OUTBOX_BROKER_URL": broker_url,
        "OUTBOX_DATABASE_URL": database_url,
        "OUTBOX_DISPATCH_AT_COMMIT": "false",
        "OUTBOX_API_REQUESTS_PER_S": "100000",
        **env,
    }
    configure(settings_from(settings))
    runtime = get_runtime()
    migrate(runtime.engine)
    with transaction(runtime.engine) as session:
        for number in (LINE, OTHER):
            session.add(Line(phone="+1" + number, username=number, session_key="k:1", state="active"))
    key = create_key(runtime.engine)
    scoped = create_key(runtime.engine, ["+1" + LINE])
    runtime.redis.flushdb()
    yield Api(TestClient(create_app(runtime)), runtime, key, scoped)
    runtime.close()


@pytest.fixture
def api(sqlite_url: str, broker_url: str) -> Iterator[Api]:
    yield from make_api(sqlite_url, broker_url)
