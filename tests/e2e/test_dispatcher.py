"""The dispatcher end to end, real processes on PostgreSQL: an urgent text overtakes a blast on its
line, and a worker that is only slow keeps its claims (its heartbeat says it lives)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tasks import send_message, send_messages
from tests.e2e.conftest import DEMO_LINE, Deployment, deploy, fresh_recipient
from tests.support.simulator import SimulatorHandle, run_simulator
from tests.support.stack import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorHandle]:
    with run_simulator("--latency-ms", "20", "--delivery-ms", "300", "--slow-answer-s", "14") as handle:
        yield handle


@pytest.fixture(scope="module")
def deployment(
    broker_url: str, simulator: SimulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    env = {"OUTBOX_PROVIDER_READ_TIMEOUT_S": "30"}  # a slow answer (14 s) is an answer, not a timeout
    with deploy("postgres", broker_url, simulator, tmp_path_factory.mktemp("dispatcher"), env) as running:
        yield running


def test_an_urgent_text_overtakes_a_blast_on_its_line(deployment: Deployment) -> None:
    deployment.set_rate(10.0)
    try:
        blast = send_messages(
            {"line": DEMO_LINE, "to": fresh_recipient(), "body": f"Our autumn sale, {n}"} for n in range(300)
        )
        wait_for(lambda: deployment.accepted(blast) >= 20, 60, 0.1, "the blast to be under way")
        to = fresh_recipient()
        started = time.monotonic()
        urgent = send_message(DEMO_LINE, to, "Your code is 4711", priority="high")
        wait_for(lambda: deployment.sends_to(to), 30, 0.05, "the urgent text to reach the provider")
        waited = time.monotonic() - started
        behind = len(blast) - deployment.accepted(blast)
        print(
            f"\nurgent behind a blast at 10/s: at the provider {waited:.2f} s after enqueue, "
            f"{behind} of the blast still queued"
        )
        assert behind > 150  # it did not wait for the blast
        assert deployment.report(urgent)["priority"] == "high"
    finally:
        deployment.set_rate(0.0)  # let the rest of the blast go before the next test
        wait_for(lambda: deployment.accepted(blast) == len(blast), 120, 0.5, "the blast to end")
        deployment.set_rate(None)


def test_a_slow_worker_keeps_its_claim(deployment: Deployment) -> None:
    to = fresh_recipient()
    deployment.simulator.script(
        to, outcomes=["slow"]
    )  # answered after 14 s, longer than a liveness key lives
    message_id = send_message(DEMO_LINE, to, "Slow but sure")
    report = deployment.wait_final(message_id, timeout_s=90)
    assert report["state"] == "delivered"
    assert [s["count"] for s in deployment.sends_to(to)] == [1]
    assert "unknown" not in [e["state"] for e in report["history"]]  # never taken from it
    assert report["parts"][0]["attempts"] == 1
