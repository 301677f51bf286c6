"""Running a whole deployment on one machine (the demo and the benchmark): Redis if none runs,
the simulator, worker(s), beat, the web process and Flower, as child processes that are stopped
together at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import redis
import requests

from worker.infra.redis_client import redis_client


class StackError(RuntimeError):
    """Something the stack needs is missing or did not start."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str, auth: tuple[str, str] | None = None) -> Callable[[], bool]:
    """A readiness check: the URL answers (any status below 500)."""

    def check() -> bool:
        try:
            return requests.get(url, timeout=1, auth=auth).status_code < 500
        except requests.RequestException:
            return False

    return check


@dataclass
class DevStack:
    """Child processes of one local deployment, with their logs in `workdir`."""

    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(
        self, name: str, argv: list[str], ready: Callable[[], bool] | None = None, timeout_s: float = 60
    ) -> None:
        """Start a process (its output in <workdir>/<name>.log) and wait until `ready` says so."""
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - open for the child's life
        self.processes[name] = subprocess.Popen(
            argv, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while ready is not None and not ready():
            if self.processes[name].poll() is not None:
                raise StackError(f"{name} exited at start; see {self.workdir / (name + '.log')}")
            if time.monotonic() > deadline:
                raise StackError(
                    f"{name} did not start within {timeout_s:.0f}s; see {self.workdir / (name + '.log')}"
                )
            time.sleep(0.2)

    def log_contains(self, name: str, text: str) -> Callable[[], bool]:
        """A readiness check: the process printed `text`."""
        path = self.workdir / f"{name}.log"
        return lambda: path.exists() and text in path.read_text(errors="replace")

    def celery(self, *args: str) -> list[str]:
        """The argv of a celery command on the outbox app."""
        return [sys.executable, "-m", "celery", "-A", "worker.app:app", *args]

    def outbox(self, *args: str) -> list[str]:
        """The argv of an outbox command."""
        return [sys.executable, "-m", "worker.cli", *args]

    def stop(self) -> None:
        """TERM every process group, newest first; KILL what is still there after a while."""
        for name in reversed(list(self.processes)):
            self._signal(name, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def stop_one(self, name: str) -> None:
        """TERM one process group and wait for it (KILL after 30 s)."""
        self._signal(name, signal.SIGTERM)
        process = self.processes.pop(name)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def _signal(self, name: str, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.processes[name].pid, sig)


def ensure_redis(stack: DevStack, url: str) -> str:
    """The broker URL to use: `url` if a Redis answers there, else a private redis-server started
    in the stack (when the binary is installed); otherwise say how to get one."""
    try:
        redis_client(url, socket_timeout_s=2).ping()
        return url
    except redis.RedisError:
        pass
    host = urlsplit(url).hostname or "localhost"
    binary = shutil.which("redis-server")
    if host not in ("localhost", "127.0.0.1", "::1") or binary is None:
        raise StackError(
            f"no Redis answers at {url}. Install one (Debian/Ubuntu: apt-get install redis-server; "
            "macOS: brew install redis) or set OUTBOX_BROKER_URL to a Redis you have."
        )
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    private = f"redis://127.0.0.1:{port}/0"
    stack.start("redis", argv, lambda: _pings(private), timeout_s=20)
    return private


def _pings(url: str) -> bool:
    try:
        return bool(redis_client(url, socket_timeout_s=1).ping())
    except redis.RedisError:
        return False
