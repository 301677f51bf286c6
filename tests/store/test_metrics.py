"""/metrics is cheap however many scrape it: the database figures come from one refresher, send
outcomes from a counter in Redis, and a token, when set, is asked for. Real PostgreSQL and Redis,
the real app (its lifespan runs the refresher)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import event, text
from starlette.testclient import TestClient

from config.settings import settings_from
from tests.support.services import throwaway_postgres
from tests.support.stack import wait_for
from worker.infra.brokers import RedisBroker
from worker.infra.metrics import OutboxCollector, count_send_outcomes
from worker.infra.runtime import Runtime
from worker.store.db import migrate
from worker.web.app import create_app
from worker.web.refresher import FiguresRefresher

SEEDED = 40_000  # a quarter in each of four states
TOKEN = "metrics-test-token"


def _seed(runtime: Runtime, rows: int, state: str | None = None) -> None:
    """Many messages in one statement (minutes old, spread over four states unless one is given)."""
    states = f"'{state}'" if state else "(ARRAY['queued','sent','delivered','failed'])[1 + g % 4]"
    with runtime.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO line (phone, username, state, created_at, updated_at) "
                "VALUES ('+15556661234', '5556661234', 'active', now(), now()) ON CONFLICT DO NOTHING"
            )
        )
        connection.execute(
            text(
                "INSERT INTO message (line_id, recipient, state, created_at, updated_at) "
                f"SELECT (SELECT id FROM line), '+1206555' || lpad((g % 10000)::text, 4, '0'), {states}, "
                "now() - interval '10 minutes', now() FROM generate_series(1, :rows) AS g"
            ),
            {"rows": rows},
        )


@pytest.fixture
def runtime(broker_url: str, request: pytest.FixtureRequest) -> Iterator[Runtime]:
    extra: dict[str, str] = getattr(request, "param", {})
    with throwaway_postgres() as url:
        settings = settings_from(
            {"OUTBOX_DATABASE_URL": url, "OUTBOX_BROKER_URL": broker_url, "OUTBOX_METRICS_REFRESH_S": "3600"}
            | extra
        )
        runtime = Runtime(settings)
        migrate(runtime.engine)
        runtime.redis.flushdb()
        _seed(runtime, SEEDED)
        yield runtime
        runtime.redis.flushdb()
        runtime.close()


def _value(page: str, series: str) -> float:
    found = re.search(rf"^{re.escape(series)} (\S+)$", page, flags=re.M)
    assert found, f"{series} not in:\n{page}"
    return float(found.group(1))


def test_scrapes_read_no_database_however_many_come_at_once(runtime: Runtime) -> None:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    with TestClient(create_app(runtime)) as web:  # the app reads the figures once as it starts
        event.listen(runtime.engine, "before_cursor_execute", record)
        try:
            with ThreadPoolExecutor(20) as pool:
                pages = [answer.text for answer in pool.map(lambda _: web.get("/metrics"), range(40))]
        finally:
            event.remove(runtime.engine, "before_cursor_execute", record)
    assert statements == []
    page = pages[-1]
    for state in ("queued", "sent", "delivered", "failed"):
        assert _value(page, f'outbox_messages{{state="{state}"}}') == SEEDED / 4
    assert _value(page, 'outbox_messages{state="rejected"}') == 0
    assert 600 <= _value(page, 'outbox_oldest_queued_age_seconds{line="+15556661234"}') < 3600
    assert 0 <= _value(page, "outbox_metrics_age_seconds") < 3600


@pytest.mark.parametrize("runtime", [{"OUTBOX_METRICS_REFRESH_S": "0.2"}], indirect=True)
def test_the_figures_follow_the_database_at_the_refresh_interval(runtime: Runtime) -> None:
    with TestClient(create_app(runtime)) as web:
        assert _value(web.get("/metrics").text, 'outbox_messages{state="rejected"}') == 0
        _seed(runtime, 7, state="rejected")
        wait_for(
            lambda: _value(web.get("/metrics").text, 'outbox_messages{state="rejected"}') == 7,
            30,
            0.1,
            "the refresher to read the new messages",
        )


def test_a_failed_read_leaves_no_figures_and_their_age_counts_from_start(
    broker_url: str, tmp_path: Any
) -> None:
    runtime = Runtime(settings_from({"OUTBOX_DATABASE_URL": f"sqlite:///{tmp_path}/missing/dir/outbox.db"}))
    refresher = FiguresRefresher(runtime.engine, 3600)
    refresher.refresh()  # no such directory: the read fails, and is only logged
    redis = Redis.from_url(broker_url)
    collector = OutboxCollector(
        redis, RedisBroker(broker_url), refresher.latest, started_at=time.monotonic() - 100
    )
    families = {family.name: family for family in collector.collect()}
    assert refresher.latest() is None and "outbox_messages" not in families
    assert families["outbox_metrics_age_seconds"].samples[0].value >= 100
    runtime.close()


def test_send_outcomes_are_counted_in_redis_and_scraped_from_there(runtime: Runtime) -> None:
    count_send_outcomes(runtime.redis, [("sent", "normal"), ("sent", "normal"), ("retrying", "normal")])
    count_send_outcomes(runtime.redis, [("sent", "high"), ("failed", "normal")])
    count_send_outcomes(Redis(port=1, retry=Retry(NoBackoff(), 0)), [("sent", "normal")])  # the work goes on
    with TestClient(create_app(runtime)) as web:
        page = web.get("/metrics").text
    assert _value(page, 'outbox_send_outcomes_total{outcome="sent",priority="normal"}') == 2
    assert _value(page, 'outbox_send_outcomes_total{outcome="sent",priority="high"}') == 1
    assert _value(page, 'outbox_send_outcomes_total{outcome="retrying",priority="normal"}') == 1
    assert _value(page, 'outbox_send_outcomes_total{outcome="failed",priority="normal"}') == 1


@pytest.mark.parametrize("runtime", [{"OUTBOX_METRICS_TOKEN": TOKEN}], indirect=True)
def test_with_a_token_set_metrics_asks_for_it_and_health_stays_open(runtime: Runtime) -> None:
    with TestClient(create_app(runtime)) as web:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            answer = web.get("/metrics", headers=headers)
            assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")
            assert TOKEN not in answer.text
        assert web.get("/metrics", headers={"Authorization": "Bearer é".encode()}).status_code == 401
        assert web.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert web.get("/healthz").status_code == 200
