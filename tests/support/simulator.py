"""Running the simulator for tests: a real process on a free port, driven through HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _admin_session() -> requests.Session:
    session = requests.Session()
    retry = Retry(total=5, connect=5, read=0, status=0, other=0, backoff_factor=0.5, allowed_methods=None)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    return session


_ADMIN = _admin_session()


@dataclass
class SimulatorHandle:
    """A running simulator and its admin endpoints."""

    base_url: str
    process: subprocess.Popen[bytes]

    def _admin(self, method: str, path: str, **kwargs: Any) -> Any:
        # Generous timeouts, and connect failures tried again (the request never left, so even a POST
        # is safe to repeat): on a busy machine the simulator may be slow to accept, never wrong.
        response = _ADMIN.request(method, self.base_url + "_sim/" + path, timeout=(30, 120), **kwargs)
        response.raise_for_status()
        return response.json()

    def counters(self) -> dict[str, Any]:
        """Calls per method, recorded sends (with counts) and duplicates."""
        return self._admin("GET", "counters")  # type: ignore[no-any-return]

    def reset(self) -> None:
        """Forget messages, counters, scripts, opt-outs, hooks and fault changes."""
        self._admin("POST", "reset")

    def set_faults(self, **fields: Any) -> dict[str, Any]:
        """Change fault settings while it runs."""
        return self._admin("PUT", "faults", json=fields)  # type: ignore[no-any-return]

    def script(
        self, to: str, outcomes: list[str] | None = None, delivery: dict[str, int] | None = None
    ) -> None:
        """Fix what the next sends to a recipient get, and/or how their delivery ends."""
        self._admin("POST", "script", json={"to": to, "outcomes": outcomes, "delivery": delivery})

    def inbound(self, line: str, sender: str, body: str) -> dict[str, Any]:
        """A recipient texts the line."""
        return self._admin("POST", "inbound", json={"line": line, "from": sender, "body": body})  # type: ignore[no-any-return]

    def invalidate_sessions(self, line: str) -> None:
        """Every session key of the line stops working."""
        self._admin("POST", "sessions/invalidate", json={"line": line})

    def login(self, username: str = "5556661234", password: str = "demo") -> str:
        """A session key through the real user/login."""
        answer = requests.post(
            self.base_url + "user/login", data={"username": username, "password": password}, timeout=10
        ).json()
        assert answer["success"], answer
        return str(answer["response"])


@contextmanager
def run_simulator(*extra_args: str, host: str = "127.0.0.1") -> Iterator[SimulatorHandle]:
    """Start `python -m simulator` on a free port of `host` and wait until it answers; stop it at the end."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "--host",
            host,
            "--port",
            str(port),
            "--seed",
            "1",
            "--quiet",
            *extra_args,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    handle = SimulatorHandle(f"http://{host}:{port}/", process)
    try:
        _wait_until_up(handle)
        yield handle
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_until_up(handle: SimulatorHandle, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            stderr = handle.process.stderr.read().decode() if handle.process.stderr else ""
            raise RuntimeError(f"simulator exited at start:\n{stderr}")
        try:
            requests.get(handle.base_url + "_sim/health", timeout=1).raise_for_status()
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError("simulator did not start in time")
