"""The per-line rate limiter, against the real Redis."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from tests.support.services import REDIS_HOST, REDIS_PORT
from worker.infra.ratelimit import LineRateLimiter, Wanted


@pytest.fixture
def limiter(redis_db: int) -> Iterator[LineRateLimiter]:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db)
    client.flushdb()
    yield LineRateLimiter(client)
    client.flushdb()


def test_slots_are_spaced_by_the_rate(limiter: LineRateLimiter) -> None:
    waits = limiter.reserve(1, rate_per_s=4.0, wanted=10, horizon_s=1.0)
    assert len(waits) == 4  # only slots starting within the horizon
    gaps = [b - a for a, b in itertools.pairwise(waits)]
    assert waits[0] == pytest.approx(0, abs=0.01)
    assert gaps == pytest.approx([0.25] * 3, abs=0.001)


def test_later_callers_queue_behind_earlier_ones(limiter: LineRateLimiter) -> None:
    first = limiter.reserve(1, rate_per_s=2.0, wanted=1, horizon_s=5.0)
    second = limiter.reserve(1, rate_per_s=2.0, wanted=1, horizon_s=5.0)
    assert second[0] - first[0] == pytest.approx(0.5, abs=0.02)


def test_lines_do_not_share_a_budget(limiter: LineRateLimiter) -> None:
    limiter.reserve(1, rate_per_s=1.0, wanted=1, horizon_s=1.0)
    assert limiter.reserve(1, rate_per_s=1.0, wanted=1, horizon_s=0.5) == []
    assert limiter.reserve(2, rate_per_s=1.0, wanted=1, horizon_s=0.5) == [pytest.approx(0, abs=0.01)]


def test_zero_rate_means_unlimited(limiter: LineRateLimiter) -> None:
    assert limiter.reserve(1, rate_per_s=0, wanted=5, horizon_s=1.0) == [0.0] * 5


def test_concurrent_callers_never_get_the_same_slot(limiter: LineRateLimiter) -> None:
    got: list[float] = []
    lock = threading.Lock()
    started = time.time()

    def grab() -> None:
        for _ in range(5):
            for wait in limiter.reserve(7, rate_per_s=100.0, wanted=1, horizon_s=60.0):
                with lock:
                    got.append(time.time() - started + wait)

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got.sort()
    assert len(got) == 40
    span = got[-1] - got[0]
    assert span >= 39 * 0.01 * 0.9  # 40 slots at 100/s cannot fit in less than 0.39 s


def test_a_costlier_text_takes_a_longer_slot(limiter: LineRateLimiter) -> None:
    waits = limiter.reserve(1, rate_per_s=4.0, wanted=3, horizon_s=2.0, costs=[1.0, 3.0, 1.0])
    assert waits == pytest.approx([0, 0.25, 1.0], abs=0.01)  # the MMS at 0.25 s holds three slots
    assert limiter.reserve(1, rate_per_s=4.0, wanted=1, horizon_s=2.0) == [pytest.approx(1.25, abs=0.01)]


def test_one_call_reserves_for_many_lines_each_at_its_own_rate(limiter: LineRateLimiter) -> None:
    waits = limiter.reserve_many(
        [
            Wanted(1, 4.0, [1.0] * 10),
            Wanted(2, 0.0, [1.0] * 3),
            Wanted(3, 2.0, [2.0, 1.0]),
            Wanted(4, 1.0, []),
        ],
        horizon_s=1.0,
    )
    assert len(waits[1]) == 4 and waits[2] == [0.0] * 3 and waits[4] == []
    assert waits[3] == [pytest.approx(0, abs=0.01)]  # a cost of 2 at 2/s: the next slot is a second away
    assert limiter.reserve(1, rate_per_s=4.0, wanted=1, horizon_s=2.0) == [pytest.approx(1.0, abs=0.02)]
