"""`outbox bench` runs end to end on a small batch: both rates measured in the same run, the JSON
keys the issue names, and nothing left behind (its Redis database and its PostgreSQL database)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, text

from tests.support.services import POSTGRES_ADMIN_URL, REDIS_HOST, REDIS_PORT, claimed_redis_db
from tests.support.stack import ROOT
from worker.infra.brokers import AmqpBroker, consumed_queues

pytestmark = pytest.mark.e2e
BENCH = [sys.executable, "-m", "worker.cli", "bench"]
SMALL = ["--postgres", POSTGRES_ADMIN_URL, "--concurrency", "16"]
KEYS = {
    "baseline_per_s",
    "pipeline_per_s",
    "ratio",
    "enqueue_per_s",
    "calls_per_delivered",
    "worker_peak_rss_mb",
    "blast_ratio",
    "cpu_ms_per_text",
    "enqueue_to_provider",
    "urgent_wait_s",
    "http_enqueue",
    "lines_round",
}


def _bench_databases() -> set[str]:
    engine = create_engine(POSTGRES_ADMIN_URL)
    with engine.connect() as connection:
        names = connection.execute(
            text("SELECT datname FROM pg_database WHERE datname LIKE 'outbox_bench_%'")
        )
        found = {row[0] for row in names}
    engine.dispose()
    return found


def _bench_json(db: int, workdir: Path, *args: str) -> dict[str, Any]:
    """A small `outbox bench --json` on Redis database `db`, its figures (the database left empty)."""
    result = subprocess.run(
        [*BENCH, "-n", "150", "--json", "--redis-db", str(db), "--workdir", str(workdir), *SMALL, *args],
        cwd=ROOT,
        env={**os.environ, "OUTBOX_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/0"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).dbsize() == 0
    assert "baseline:" in result.stderr and "pipeline:" in result.stderr  # progress goes to stderr
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def test_bench_measures_the_baseline_and_the_pipeline_in_one_run(tmp_path: Path) -> None:
    before = _bench_databases()
    with claimed_redis_db() as db:
        figures = _bench_json(db, tmp_path, "--lines", "10")
    assert figures.keys() >= KEYS
    assert figures["baseline_per_s"] > 0 and figures["pipeline_per_s"] > 0
    assert figures["ratio"] == pytest.approx(figures["pipeline_per_s"] / figures["baseline_per_s"], rel=0.01)
    assert figures["calls_per_delivered"] >= 1  # at least the send itself
    assert figures["worker_peak_rss_mb"] > 20
    latency = figures["enqueue_to_provider"]
    assert 0 < latency["p50_s"] <= latency["p95_s"] <= latency["p99_s"]
    assert set(figures["urgent_wait_s"]) == {"10/s behind 1,000", "1/s behind 5,000"}
    assert all(0 < waited < 60 for waited in figures["urgent_wait_s"].values())
    assert figures["cpu_ms_per_text"]["worker"] > 0
    http = figures["http_enqueue"]
    assert http["single_requests_per_s"] > 0 and http["batch_texts_per_s"] > 0
    lines = figures["lines_round"]
    assert lines["lines"] == 10 and lines["calls_per_delivered"] >= 1 and lines["last_accepted_s"] > 0
    assert lines["cpu_ms_per_text"]["worker"] > 0 and lines["cpu_ms_per_text"]["beat"] >= 0
    assert _bench_databases() == before


def test_bench_refuses_a_redis_database_that_is_in_use(tmp_path: Path) -> None:
    with claimed_redis_db() as db:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).set("someone-else", "1")
        result = subprocess.run(
            [*BENCH, "-n", "10", "--redis-db", str(db), "--workdir", str(tmp_path)],
            cwd=ROOT,
            env={**os.environ, "OUTBOX_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/0"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode != 0 and "is not empty" in result.stdout + result.stderr
        assert redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).get("someone-else") == b"1"


def test_bench_measures_on_rabbitmq_with_broker(tmp_path: Path, amqp_url: str) -> None:
    with claimed_redis_db() as db:
        figures = _bench_json(db, tmp_path, "--broker", amqp_url)
    assert figures["database"] == "PostgreSQL, RabbitMQ"
    assert figures["pipeline_per_s"] > 0 and figures["calls_per_delivered"] >= 1
    assert AmqpBroker(amqp_url).queue_lengths(consumed_queues(amqp_url)) == dict.fromkeys(
        consumed_queues(amqp_url), 0
    )  # nothing left behind
