"""Running the real processes for end-to-end tests: celery worker(s) and beat on real Redis.

A `Stack` is one deployment: its settings (as environment variables, exactly what an operator
sets), its worker and beat processes, and an in-process runtime for the producer side.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

from config.settings import Settings
from worker.infra.brokers import consumed_queues, is_amqp
from worker.infra.redis_client import redis_client

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

# Timings shrunk so that a whole scenario takes seconds; every one is an ordinary setting.
FAST_TIMINGS = {
    "OUTBOX_POLL_DELAYS_S": "[0.3, 0.5, 1, 2]",
    "OUTBOX_RETRY_BACKOFF_BASE_S": "0.2",
    "OUTBOX_RETRY_BACKOFF_MAX_S": "1",
    "OUTBOX_PROVIDER_CONNECT_TIMEOUT_S": "1",
    "OUTBOX_PROVIDER_READ_TIMEOUT_S": "1",
    "OUTBOX_RECONCILE_DELAY_S": "0.5",
    "OUTBOX_RECONCILE_SETTLE_S": "3",
    "OUTBOX_RELEASE_LEASE_S": "10",
    "OUTBOX_CLAIM_TIMEOUT_S": "15",
    "OUTBOX_TASK_TIME_LIMIT_S": "10",
    "OUTBOX_SWEEPER_INTERVAL_S": "2",
    "OUTBOX_LINE_RATE": "0",
}


def wait_for(
    check: Callable[[], T | None], timeout_s: float = 30.0, interval_s: float = 0.1, what: str = ""
) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what or check}")
        time.sleep(interval_s)


@dataclass
class Stack:
    """Settings plus the processes of one deployment."""

    env: dict[str, str]
    workdir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        """The settings these processes run with, read from the same environment."""
        with mock.patch.dict(os.environ, self.env):
            return Settings()

    def _start(
        self, name: str, args: list[str], ready_text: str | None, prefix: Sequence[str] = ()
    ) -> subprocess.Popen[bytes]:
        log_path = self.workdir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - kept open for the process's life
        process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "celery", "-A", "worker.app:app", *args],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, like a separate host
        )
        self.processes[name] = process
        if ready_text:
            wait_for(lambda: self._ready(name, log_path, ready_text), 60, 0.2, f"{name} to start")
        return process

    def _ready(self, name: str, log_path: Path, text: str) -> bool:
        if self.processes[name].poll() is not None:
            raise AssertionError(f"{name} exited early:\n{log_path.read_text(errors='replace')[-3000:]}")
        return text in log_path.read_text(errors="replace")

    def start_worker(
        self, name: str = "worker1", concurrency: int = 8, pool: str = "threads", prefix: Sequence[str] = ()
    ) -> subprocess.Popen[bytes]:
        """Start a worker on every queue and wait until it is ready (`prefix`: run it through, say,
        `ip netns exec HOST`)."""
        return self._start(
            name,
            [
                "worker",
                "-Q",
                ",".join(consumed_queues(self.env.get("OUTBOX_BROKER_URL", ""))),
                "--pool",
                pool,
                "--concurrency",
                str(concurrency),
                "--hostname",
                f"{name}@%h",
                "--without-mingle",
                "--without-gossip",
                "-l",
                "INFO",
            ],
            "ready.",
            prefix,
        )

    def start_beat(self) -> subprocess.Popen[bytes]:
        """Start beat (release every second, sweeper on its interval)."""
        schedule = self.workdir / "beat-schedule"
        return self._start("beat", ["beat", "-l", "INFO", "--schedule", str(schedule)], "beat: Starting")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a process's whole group (a worker and its pool children) and reap it."""
        process = self.processes.pop(name)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def stop(self) -> None:
        """Stop everything (TERM, then KILL what lingers)."""
        for name in list(self.processes):
            self.kill(name, signal.SIGTERM)

    def log(self, name: str) -> str:
        """What a process printed so far."""
        return (self.workdir / f"{name}.log").read_text(errors="replace")


@contextmanager
def running_stack(env: dict[str, str], workdir: Path, workers: int = 1, beat: bool = True) -> Iterator[Stack]:
    """A stack with its worker(s) and beat running, stopped at exit. It starts on an empty broker
    and Redis: what an earlier deployment of this test run left there (tasks, leases, workers'
    notes) names messages of another database."""
    stack = Stack({**FAST_TIMINGS, **env}, workdir)
    empty_broker_and_redis(stack.env)
    try:
        for number in range(1, workers + 1):
            stack.start_worker(f"worker{number}")
        if beat:
            stack.start_beat()
        yield stack
    finally:
        stack.stop()


def empty_broker_and_redis(env: dict[str, str]) -> None:
    """Empty the deployment's Redis database, and its RabbitMQ queues when that is the broker."""
    broker = env.get("OUTBOX_BROKER_URL")
    redis_at = env.get("OUTBOX_REDIS_URL") or broker
    if redis_at:
        redis_client(redis_at).flushdb()
    if broker and is_amqp(broker):
        from tests.support.rabbitmq import purge

        purge(broker)


def report_state(report: dict[str, Any] | None) -> str | None:
    """The state in a status report, or None."""
    return report["state"] if report else None
