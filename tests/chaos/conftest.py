"""The chaos suite's harness: a real deployment on PostgreSQL, a batch of messages in flight, a
fault, and the figures (sent, faults, lost, duplicated) printed at the end of the run."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from config.settings import Settings
from tests.conftest import CHAOS_FIGURE
from tests.e2e.conftest import DEMO_LINE, DEMO_PASSWORD, start_web
from tests.support.services import throwaway_postgres
from tests.support.simulator import SimulatorHandle, free_port, run_simulator
from tests.support.stack import Stack, running_stack
from worker.app import configure
from worker.infra.runtime import Runtime, get_runtime
from worker.lines import login_line
from worker.producer.enqueue import enqueue
from worker.store.db import make_engine, migrate
from worker.store.models import Message
from worker.store.states import FINAL_STATES, State

# Timings for a run of a minute or two: claims, leases and the visibility timeout all short.
CHAOS_TIMINGS = {
    "OUTBOX_TASK_TIME_LIMIT_S": "8",
    "OUTBOX_CLAIM_TIMEOUT_S": "10",
    "OUTBOX_RELEASE_LEASE_S": "8",
    "OUTBOX_BROKER_VISIBILITY_TIMEOUT_S": "30",
    "OUTBOX_SEND_MAX_ATTEMPTS": "10",
    "OUTBOX_SWEEPER_INTERVAL_S": "2",
}
# Every timing the harnesses shorten, back at its default: for scenarios that measure the real thing.
DEFAULT_TIMINGS = {
    f"OUTBOX_{name.upper()}": str(Settings.model_fields[name].default)
    for name in (
        "task_time_limit_s",
        "claim_timeout_s",
        "release_lease_s",
        "broker_visibility_timeout_s",
        "send_max_attempts",
        "sweeper_interval_s",
        "retry_backoff_base_s",
        "retry_backoff_max_s",
        "provider_connect_timeout_s",
        "provider_read_timeout_s",
        "reconcile_delay_s",
        "reconcile_settle_s",
    )
} | {"OUTBOX_POLL_DELAYS_S": "[5, 10, 20, 40, 60, 120, 300, 600, 1800, 3600]"}


@dataclass
class Chaos:
    """One deployment under test, with its batch of messages."""

    stack: Stack
    simulator: SimulatorHandle
    runtime: Runtime
    database_url: str
    broker_url: str = ""
    ids: list[int] = field(default_factory=list)
    report: list[tuple[str, object]] = field(default_factory=list)  # the test's user_properties

    def enqueue(self, count: int, prefix: str) -> list[int]:
        """`count` messages, each with its own recipient and body (so a duplicate is visible)."""
        new = [
            enqueue(
                self.runtime, DEMO_LINE, f"+1206555{1000 + n:04d}", f"{prefix} #{n}: code {n * 7919 % 10000}"
            )
            for n in range(len(self.ids), len(self.ids) + count)
        ]
        self.ids.extend(new)
        return new

    def final_count(self) -> int:
        with Session(self.runtime.engine) as session:
            query = select(func.count()).where(
                col(Message.id).in_(self.ids), col(Message.state).in_([s.value for s in FINAL_STATES])
            )
            return int(session.exec(query).one())

    def wait_until(self, check: Callable[[], bool], timeout_s: float, interval_s: float = 0.5) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(interval_s)
        return False

    def states(self) -> dict[str, int]:
        with Session(self.runtime.engine) as session:
            rows = session.exec(
                select(Message.state, func.count())
                .where(col(Message.id).in_(self.ids))
                .group_by(Message.state)
            ).all()
        return {State(state).value: count for state, count in rows}

    def settle(self, scenario: str, faults: str, timeout_s: float = 150) -> dict[str, Any]:
        """Wait for every message to be final; record and return the figures."""
        self.wait_until(lambda: self.final_count() >= len(self.ids), timeout_s)
        counters = self.simulator.counters()
        sent = {(s["to"], s["body"]) for s in counters["sends"]}
        states = self.states()
        figures = {
            "messages": len(self.ids),
            "faults": faults,
            "states": states,
            "lost": len(self.ids) - self.final_count(),
            "duplicated": counters["duplicates"],
            "at the provider": len(sent),
        }
        self.report.append(
            (
                CHAOS_FIGURE,
                f"{scenario}: {figures['messages']} messages, faults: {faults}; final states {states}; "
                f"lost {figures['lost']}, duplicated at the provider {figures['duplicated']}",
            )
        )  # printed at the end of the run (tests/conftest.py)
        return figures


@pytest.fixture
def chaos(request: pytest.FixtureRequest, broker_url: str, tmp_path: Path) -> Iterator[Callable[..., Chaos]]:
    """A factory: chaos(simulator_args=..., workers=..., pool=..., broker="redis" or "amqp") -> a
    running deployment (on RabbitMQ, the test run's vhost; rate limits and locks stay in Redis)."""
    stacks: list[Any] = []

    def build(
        simulator_args: tuple[str, ...] = (),
        workers: int = 1,
        pool: str = "threads",
        env: dict[str, str] | None = None,
        web: bool = False,
        broker: str = "redis",
    ) -> Chaos:
        brokers = {"OUTBOX_BROKER_URL": broker_url}
        if broker == "amqp":
            brokers = request.getfixturevalue("amqp_env")
        database = throwaway_postgres()
        database_url = database.__enter__()
        stacks.append(database)
        simulator = run_simulator(
            "--latency-ms", "150", "--delivery-ms", "500", "--slow-answer-s", "2", *simulator_args
        )
        handle = simulator.__enter__()
        stacks.append(simulator)
        engine = make_engine(database_url)
        migrate(engine)
        engine.dispose()
        _flush(broker_url)
        full_env = {
            **CHAOS_TIMINGS,
            **brokers,
            "OUTBOX_DATABASE_URL": database_url,
            "ZIPWHIP_BASE_URL": handle.base_url,
            **(env or {}),
        }
        if web:
            full_env["OUTBOX_WEB_PORT"] = str(free_port())
        stack_cm = running_stack(full_env, tmp_path, workers=0)
        stack = stack_cm.__enter__()
        stacks.append(stack_cm)
        if web:
            start_web(stack)
        for n in range(1, workers + 1):
            stack.start_worker(f"worker{n}", concurrency=16 if pool == "threads" else 4, pool=pool)
        configure(stack.settings)
        runtime = get_runtime()
        login_line(runtime, DEMO_LINE, None, DEMO_PASSWORD)
        return Chaos(
            stack,
            handle,
            runtime,
            database_url,
            brokers["OUTBOX_BROKER_URL"],
            report=request.node.user_properties,
        )

    yield build
    for cm in reversed(stacks):
        cm.__exit__(None, None, None)
    get_runtime().close()


def _flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()
