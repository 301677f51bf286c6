"""RabbitMQ for the tests: a vhost of a test run's own (made with rabbitmqctl, deleted after), its
queues emptied between deployments, its connections closed and the broker restarted on demand.

Like Redis and PostgreSQL (`tests.support.services`), a missing RabbitMQ skips the tests that need it
on a developer's machine and fails them in CI.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from kombu import Connection

from worker.infra.brokers import consumed_queues

RABBITMQ_HOST = os.environ.get("OUTBOX_TEST_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_PORT = int(os.environ.get("OUTBOX_TEST_RABBITMQ_PORT", "5672"))
RABBITMQ_USER = os.environ.get("OUTBOX_TEST_RABBITMQ_USER", "guest")
RABBITMQ_PASSWORD = os.environ.get("OUTBOX_TEST_RABBITMQ_PASSWORD", "guest")
# A restart of the broker touches every vhost: test runs on this machine take turns.
RESTART_LOCK = Path(os.environ.get("TMPDIR", "/tmp")) / "outbox-test-rabbitmq-restart.lock"


def rabbitmq_problem() -> str | None:
    """None if RabbitMQ answers and rabbitmqctl can manage it, else what is wrong."""
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not installed (the tests make a vhost of their own with it)"
    try:
        with Connection(_url("/"), connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:
        return f"no AMQP answer at {RABBITMQ_HOST}:{RABBITMQ_PORT} ({error})"
    return None


def _url(vhost: str) -> str:
    path = "%2F" if vhost == "/" else vhost
    return f"amqp://{RABBITMQ_USER}:{RABBITMQ_PASSWORD}@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{path}"


def rabbitmqctl(*args: str, timeout_s: float = 60) -> str:
    """Run rabbitmqctl; returns what it printed (it must succeed)."""
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip() or done.stdout}")
    return done.stdout


@contextmanager
def throwaway_vhost() -> Iterator[str]:
    """A vhost of its own for the guest user; yields its broker URL, deleted at exit."""
    vhost = f"outbox-test-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, RABBITMQ_USER, ".*", ".*", ".*")
        yield _url(vhost)
    finally:
        with suppress(Exception):
            rabbitmqctl("delete_vhost", vhost)


def vhost_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def purge(url: str) -> None:
    """Empty the outbox's queues in the vhost (those not declared yet are empty already)."""
    with Connection(url, connect_timeout=5) as connection:
        for queue in consumed_queues(url):
            channel = connection.channel()
            try:
                channel.queue_purge(queue)
            except Exception as error:
                if getattr(error, "code", None) != 404:
                    raise
            finally:
                with suppress(Exception):
                    channel.close()


def close_connections(url: str) -> int:
    """Close every client connection to the vhost (as a network cut would); returns how many."""
    vhost = vhost_of(url)
    listed = rabbitmqctl("list_connections", "pid", "vhost", "--quiet", "--no-table-headers")
    closed = 0
    for line in listed.splitlines():
        fields = line.split("\t")
        if len(fields) == 2 and fields[1].strip() == vhost:
            with suppress(RuntimeError):  # it may have closed by itself meanwhile
                rabbitmqctl("close_connection", fields[0].strip(), "outbox test: connection cut")
                closed += 1
    return closed


@contextmanager
def broker_restart_turn() -> Iterator[None]:
    """Hold the machine-wide turn to restart the broker (other test runs use it too)."""
    with open(RESTART_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def restart_broker(url: str, down_s: float = 2.0) -> float:
    """Stop RabbitMQ's application and start it again (every vhost; queues and messages are kept):
    its clients' connections drop and they reconnect. Returns how long it was down."""
    with broker_restart_turn():
        started = time.monotonic()
        rabbitmqctl("stop_app")
        try:
            time.sleep(down_s)  # an outage the clients notice, kept short for the other vhosts' sake
        finally:
            rabbitmqctl("start_app", timeout_s=120)
            rabbitmqctl("await_startup", timeout_s=120)
        return time.monotonic() - started
