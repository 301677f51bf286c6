"""End-to-end fixtures: the simulator, a real worker and beat on real Redis, SQLite and PostgreSQL."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support.services import throwaway_postgres
from tests.support.simulator import SimulatorHandle, run_simulator
from tests.support.stack import Stack, running_stack, wait_for
from worker.app import configure
from worker.lines import login_line
from worker.planning import FileInput
from worker.report import message_report
from worker.runtime import Runtime, get_runtime
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
    with _database(request.param, workdir) as database_url:
        env = {
            "OUTBOX_BROKER_URL": broker_url,
            "OUTBOX_DATABASE_URL": database_url,
            "ZIPWHIP_BASE_URL": simulator.base_url,
            "OUTBOX_OUTCOME_HOOK": "tests.support.hooks:record_outcome",
            "OUTBOX_TEST_HOOK_FILE": str(workdir / "outcomes.txt"),
        }
        engine = make_engine(database_url)
        migrate(engine)
        engine.dispose()
        with running_stack(env, workdir) as stack:
            configure(stack.settings)
            runtime = get_runtime()
            login_line(runtime, DEMO_LINE, None, DEMO_PASSWORD)
            yield Deployment(stack, simulator, runtime)
            runtime.close()


def _database(kind: str, workdir: Path) -> Any:
    if kind == "postgres":
        return throwaway_postgres()
    from contextlib import nullcontext

    return nullcontext(f"sqlite:///{workdir / 'outbox.db'}")
