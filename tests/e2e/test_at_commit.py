"""A text its idle line can send goes to a worker at the producer's commit: with no beat running at
all (no release job), it still reaches the provider. Its own module: a deployment of another module
sharing the broker would take its task."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tasks import send_message
from tests.e2e.conftest import DEMO_LINE, DEMO_PASSWORD, fresh_recipient
from tests.support.services import throwaway_postgres
from tests.support.simulator import run_simulator
from tests.support.stack import running_stack, wait_for
from worker.app import configure
from worker.infra.runtime import get_runtime
from worker.lines import login_line
from worker.store.db import make_engine, migrate

pytestmark = pytest.mark.e2e


def test_a_single_text_reaches_the_provider_without_beat(broker_url: str, tmp_path: Path) -> None:
    with run_simulator() as simulator, throwaway_postgres() as database_url:
        engine = make_engine(database_url)
        migrate(engine)
        engine.dispose()
        env = {
            "OUTBOX_BROKER_URL": broker_url,
            "OUTBOX_DATABASE_URL": database_url,
            "ZIPWHIP_BASE_URL": simulator.base_url,
        }
        with running_stack(env, tmp_path, beat=False) as stack:  # no release job at all
            configure(stack.settings)
            runtime = get_runtime()
            login_line(runtime, DEMO_LINE, None, DEMO_PASSWORD)
            to = fresh_recipient()
            started = time.monotonic()
            send_message(DEMO_LINE, to, "Straight to a worker")
            wait_for(
                lambda: [s for s in simulator.counters()["sends"] if s["to"] == to], 30, 0.02, "the send"
            )
            print(f"\nenqueue to provider without beat: {time.monotonic() - started:.3f} s")
            runtime.close()
