"""A thousand lines at once, end to end on PostgreSQL: 1,000 lines x 5 texts at 1/s each, enqueued
in one go, are all delivered, none twice, each line at its own rate.

How fast is measured by `outbox bench --lines 1000` (goal: the last text accepted within 10 s; the
rate alone needs 4 s), not asserted here: a time bound in a test races the machine. This test prints
the figure (one worker, production timings) and asserts what must hold however busy the machine is."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from sqlmodel import Session

from tests.chaos.conftest import DEFAULT_TIMINGS
from tests.e2e.conftest import Deployment, deploy
from tests.support.rates import provider_times
from tests.support.simulator import SimulatorHandle, run_simulator
from tests.support.stack import wait_for
from worker.lines import LineLogin, login_lines, set_rates
from worker.producer.enqueue import TextRequest, enqueue_many
from worker.store import progress

pytestmark = pytest.mark.e2e

LINES = 1_000
PER_LINE = 5
FIRST_LINE = 5559300000
PASSWORD = "demo"


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorHandle]:
    with run_simulator(
        "--latency-ms", "20", "--delivery-ms", "300", "--line-range", f"{FIRST_LINE}:{LINES}"
    ) as handle:
        yield handle


@pytest.fixture(scope="module")
def deployment(
    broker_url: str, simulator: SimulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("many-lines")
    # Production timings: the tests' fast ones poll each line every 0.3 s and give up on an answer
    # after 1 s, which at a thousand lines measures the polls, not the dispatch.
    with deploy("postgres", broker_url, simulator, workdir, DEFAULT_TIMINGS) as running:
        yield running


def test_a_thousand_lines_of_five_texts_each_are_delivered_once_at_each_lines_rate(
    deployment: Deployment,
) -> None:
    runtime = deployment.runtime
    phones = [str(FIRST_LINE + n) for n in range(LINES)]
    failed = [r for r in login_lines(runtime, [LineLogin(p, None, PASSWORD) for p in phones], 32) if r.error]
    assert failed == []
    set_rates(runtime, phones, 1.0)
    texts = [
        TextRequest(p, f"+1971{5550000 + k:07d}", f"many {p} {k}") for p in phones for k in range(PER_LINE)
    ]
    started = time.monotonic()
    ids = enqueue_many(runtime, texts)

    def not_accepted() -> int:
        with Session(runtime.engine) as session:
            return progress.parts_not_accepted(session, ids)

    wait_for(lambda: not_accepted() == 0, 300, 0.2, "every text to be accepted")
    accepted_s = time.monotonic() - started
    print(f"\n{LINES:,} lines x {PER_LINE} texts at 1/s: last accepted {accepted_s:.1f} s after enqueue")

    def not_final() -> int:
        with Session(runtime.engine) as session:
            return progress.messages_not_final(session, ids)

    wait_for(lambda: not_final() == 0, 300, 0.5, "every text to be final")
    with Session(runtime.engine) as session:
        assert progress.messages_delivered(session, ids) == len(texts)
    assert deployment.simulator.counters()["duplicates"] == 0
    for phone in phones[:: LINES // 10]:  # a sample: each line's own texts, by the provider's clock
        times = provider_times(runtime, phone, PASSWORD, "many ")
        assert len(times) == PER_LINE
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 0.9, (phone, gaps)  # 1/s, within the clock's and a slot's rounding
