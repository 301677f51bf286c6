"""End-to-end fixtures: the simulator, a real worker and beat on real Redis, SQLite and PostgreSQL."""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image
from sqlmodel import Session

from tests.support.services import throwaway_postgres
from tests.support.simulator import SimulatorHandle, free_port, run_simulator
from tests.support.stack import ROOT, Stack, running_stack, wait_for
from worker.app import configure
from worker.infra.runtime import Runtime, get_runtime
from worker.lines import login_line, set_rates
from worker.planning import FileInput
from worker.report import message_report
from worker.store import progress
from worker.store.db import make_engine, migrate, transaction
from worker.store.states import FINAL_STATES

DEMO_LINE = "5556661234"
DEMO_PASSWORD = "demo"
_numbers = itertools.count(1000)


def fresh_recipient() -> str:
    """A valid US mobile-looking number no other test has used in this run."""
    return f"+1206555{next(_numbers):04d}"


def image(kind: str, size: int = 64, noise: bool = False) -> FileInput:
    """A real image file of the given kind ("png", "jpg", "gif")."""
    picture = (
        Image.effect_noise((size, size), 64).convert("RGB")
        if noise
        else Image.new("RGB", (size, size), "teal")
    )
    buffer = io.BytesIO()
    picture.save(buffer, {"jpg": "JPEG"}.get(kind, kind.upper()))
    return FileInput(name=f"picture.{kind}", data=buffer.getvalue())


@dataclass
class Deployment:
    """One running deployment, seen from the application's side."""

    stack: Stack
    simulator: SimulatorHandle
    runtime: Runtime

    @property
    def web_url(self) -> str:
        """The web process (started with `deploy(..., web=True)`)."""
        return f"http://127.0.0.1:{self.stack.env['OUTBOX_WEB_PORT']}"

    def cli(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run an `outbox` command against this deployment; returns what it printed (it must succeed)."""
        result = subprocess.run(
            [sys.executable, "-m", "worker.cli", *args],
            cwd=ROOT,
            env={**os.environ, **self.stack.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"outbox {' '.join(args)} failed:\n{result.stderr[-3000:]}"
        return result.stdout

    def report(self, message_id: int) -> dict[str, Any]:
        with transaction(self.runtime.engine) as session:
            found = message_report(session, message_id)
        assert found is not None, f"message {message_id} not recorded"
        return found

    def wait_final(self, message_id: int, timeout_s: float = 30) -> dict[str, Any]:
        """Wait until the message is final; returns its report."""

        def final() -> dict[str, Any] | None:
            report = self.report(message_id)
            return report if report["state"] in FINAL_STATES else None

        return wait_for(final, timeout_s, 0.2, f"message {message_id} to be final")

    def wait_state(self, message_id: int, state: str, timeout_s: float = 30) -> dict[str, Any]:
        """Wait until the message is in `state`."""

        def reached() -> dict[str, Any] | None:
            report = self.report(message_id)
            return report if report["state"] == state else None

        return wait_for(reached, timeout_s, 0.2, f"message {message_id} to be {state}")

    def hook_calls(self) -> list[str]:
        """What the outcome hook was told, one "id state" per line."""
        path = self.stack.workdir / "outcomes.txt"
        return path.read_text().splitlines() if path.exists() else []

    def accepted(self, message_ids: list[int]) -> int:
        """How many parts of these messages the provider has accepted (given an id)."""
        with Session(self.runtime.engine) as session:
            return progress.parts_sent(session, message_ids)

    def set_rate(self, rate_per_s: float | None) -> None:
        """The demo line's own rate (0: unlimited; None: back to the setting's)."""
        set_rates(self.runtime, [DEMO_LINE], rate_per_s)

    def sends_to(self, recipient: str) -> list[dict[str, Any]]:
        """What the provider recorded as sent to this recipient (one entry per distinct send)."""
        return [s for s in self.simulator.counters()["sends"] if s["to"] == recipient]


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorHandle]:
    with run_simulator("--delivery-ms", "300", "--slow-answer-s", "2.5") as handle:
        yield handle


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def deployment(
    request: pytest.FixtureRequest,
    broker_url: str,
    simulator: SimulatorHandle,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp(f"stack-{request.param}")
    with deploy(request.param, broker_url, simulator, workdir) as running:
        yield running


@contextmanager
def deploy(
    kind: str,
    broker_url: str,
    simulator: SimulatorHandle,
    workdir: Path,
    env: dict[str, str] | None = None,
    web: bool = False,
    workers: int = 1,
    beat: bool = True,
) -> Iterator[Deployment]:
    """A deployment on `kind` ("sqlite" or "postgres"): worker(s), beat, and the web process if asked."""
    with _database(kind, workdir) as database_url:
        full_env = {
            "OUTBOX_BROKER_URL": broker_url,
            "OUTBOX_DATABASE_URL": database_url,
            "ZIPWHIP_BASE_URL": simulator.base_url,
            "OUTBOX_OUTCOME_HOOK": "tests.support.callbacks:record_outcome",
            "OUTBOX_TEST_HOOK_FILE": str(workdir / "outcomes.txt"),
            **(env or {}),
        }
        if web:
            full_env["OUTBOX_WEB_PORT"] = str(free_port())
        engine = make_engine(database_url)
        migrate(engine)
        engine.dispose()
        with running_stack(full_env, workdir, workers, beat) as stack:
            if web:
                start_web(stack)
            configure(stack.settings)
            runtime = get_runtime()
            login_line(runtime, DEMO_LINE, None, DEMO_PASSWORD)
            yield Deployment(stack, simulator, runtime)
            runtime.close()


def start_web(stack: Stack) -> None:
    port = stack.env["OUTBOX_WEB_PORT"]
    log = open(stack.workdir / "web.log", "ab")  # noqa: SIM115 - open for the process's life
    stack.processes["web"] = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "web"],
        env={**os.environ, **stack.env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def up() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_for(up, 60, 0.2, "the web process")


def _database(kind: str, workdir: Path) -> Any:
    if kind == "postgres":
        return throwaway_postgres()
    from contextlib import nullcontext

    return nullcontext(f"sqlite:///{workdir / 'outbox.db'}")
