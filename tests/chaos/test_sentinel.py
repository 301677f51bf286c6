"""Chaos: Redis behind Sentinels (the broker, the rate limiter and the locks in one primary with a
replica) loses its primary mid-run. Nothing is lost, nothing doubled, and the line keeps its rate."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.conftest import Chaos
from tests.chaos.test_chaos import assert_nothing_lost_or_doubled
from tests.e2e.conftest import DEMO_LINE, DEMO_PASSWORD
from tests.support.rates import busiest, provider_times
from tests.support.redis_servers import SentinelDeployment, sentinel_deployment

pytestmark = pytest.mark.e2e
RATE = 5.0


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelDeployment]:
    with sentinel_deployment(tmp_path / "redis") as deployment:
        yield deployment


@pytest.mark.parametrize("how", ["primary killed", "sentinel failover"])
def test_a_redis_failover_mid_run_loses_and_doubles_nothing_and_keeps_the_rate(
    sentinels: SentinelDeployment, chaos: Callable[..., Chaos], how: str
) -> None:
    env = {"OUTBOX_BROKER_URL": sentinels.url(db=0), "OUTBOX_LINE_RATE": str(RATE)}
    run = chaos(workers=2, env=env)
    prefix = f"failover ({how})"
    run.enqueue(100, prefix)
    run.wait_until(lambda: _at_provider(run, prefix) >= 30, 90)
    before = _at_provider(run, prefix)
    sentinels.fail_over(kill=how == "primary killed")
    figures = run.settle(
        f"Redis failover ({how})", f"the Redis primary lost with {before} of 100 at the provider", 180
    )
    assert_nothing_lost_or_doubled(figures)
    sent = provider_times(run.runtime, DEMO_LINE, DEMO_PASSWORD, prefix)
    assert len(sent) == 100
    # At most one slot of jitter either way. `SENTINEL FAILOVER` leaves the old primary taking writes
    # until the Sentinels demote it; the rate limiter's primary fence keeps reservations off it (a line
    # went 52 in 10 s at 5/s before the fence, on a loaded machine).
    assert busiest(sent) <= RATE * 10 + 1, "a line never goes faster than its rate (plus one slot)"


def _at_provider(run: Chaos, prefix: str) -> int:
    return sum(1 for s in run.simulator.counters()["sends"] if s["body"].startswith(prefix))
