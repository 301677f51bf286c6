"""The backoff maths."""

from __future__ import annotations

import random

import pytest

from worker.pipeline.retry import RetryPolicy


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (10, 30.0)])
def test_delay_doubles_up_to_the_cap_with_jitter(attempt: int, ceiling: float) -> None:
    policy = RetryPolicy(max_attempts=10, base_s=2.0, max_s=30.0)
    rng = random.Random(7)
    delays = [policy.delay_s(attempt, rng=rng) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert max(delays) - min(delays) > ceiling / 10  # jitter spreads them


def test_retry_after_is_a_floor() -> None:
    assert RetryPolicy(base_s=1, max_s=2).delay_s(1, retry_after_s=45) == 45


def test_attempts_are_bounded() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.exhausted(n) for n in (1, 2, 3, 4)] == [False, False, True, True]
