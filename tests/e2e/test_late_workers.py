"""Workers far behind their queue still keep each line's rate: the sends released while no worker
ran (their slots long past) go one interval apart when a worker finally takes them, not all at once.

Real processes on PostgreSQL: the release job runs in this test (no worker, no beat) until a line's
texts are all handed to the broker over several seconds of slots; then a worker and beat start, and
the provider's own clock says how close together the line's texts really went."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tasks import send_messages
from tests.e2e.conftest import DEMO_LINE, DEMO_PASSWORD, Deployment, deploy, fresh_recipient
from tests.support.rates import busiest, provider_times
from tests.support.simulator import SimulatorHandle
from tests.support.stack import wait_for
from worker.pipeline.release import release_due
from worker.store.db import transaction
from worker.store.queue import released_unclaimed

pytestmark = pytest.mark.e2e

RATE = 10.0  # texts a second on the line
COUNT = 40  # four seconds of the line's slots, all past when the worker starts
PREFIX = "Late but paced"


@pytest.fixture(scope="module")
def idle(
    broker_url: str, simulator: SimulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """A deployment with nothing running yet: no worker, no beat."""
    workdir = tmp_path_factory.mktemp("late-workers")
    with deploy("postgres", broker_url, simulator, workdir, workers=0, beat=False) as running:
        yield running


def test_a_worker_far_behind_still_keeps_its_lines_rate(idle: Deployment) -> None:
    idle.set_rate(RATE)
    texts = send_messages(
        {"line": DEMO_LINE, "to": fresh_recipient(), "body": f"{PREFIX} {n}"} for n in range(COUNT)
    )

    def all_handed_to_the_broker() -> bool:
        release_due(idle.runtime)  # the release job's runs, as beat would make them
        with transaction(idle.runtime.engine) as session:
            return released_unclaimed(session) >= COUNT

    wait_for(all_handed_to_the_broker, 60, 0.2, "every text to be released (a line's slots for 4 s)")
    idle.stack.start_worker()
    idle.stack.start_beat()
    wait_for(lambda: idle.accepted(texts) == COUNT, 120, 0.2, "the worker to send them all")
    times = provider_times(idle.runtime, DEMO_LINE, DEMO_PASSWORD, PREFIX)
    assert len(times) == COUNT, "each text sent once"
    closest = min(b - a for a, b in itertools.pairwise(times))
    print(f"\nlate sends at {RATE:.0f}/s: busiest 2 s {busiest(times, 2.0)}, closest {closest * 1000:.0f} ms")
    # Without the pace the worker sends them as fast as it can (all 40 within a second or so). The
    # margin (4 over 2 s of slots and one) is the provider's view of a paced send arriving late.
    assert busiest(times, 2.0) <= 2 * RATE + 1 + 4
