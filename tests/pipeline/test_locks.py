"""A beat job's lock outlives a run that takes longer than its timeout, and never fails that run."""

from __future__ import annotations

import threading
import time

import redis

from worker.infra.constants import LOCK_KEY
from worker.infra.locks import exclusive

TIMEOUT_S = 3.0


def test_a_run_longer_than_the_lock_keeps_it_and_ends_normally(client: redis.Redis) -> None:
    started, finish = threading.Event(), threading.Event()
    outcome: list[str] = []

    def long_run() -> None:
        with exclusive(client, "release", TIMEOUT_S) as mine:
            assert mine
            started.set()
            finish.wait(60)
        outcome.append("ended")

    runner = threading.Thread(target=long_run)
    runner.start()
    assert started.wait(30)
    deadline = time.monotonic() + 1.5 * TIMEOUT_S  # well past the lock's own timeout
    while time.monotonic() < deadline:
        with exclusive(client, "release", TIMEOUT_S) as mine:
            assert not mine, "a second run started while the first still worked"
        time.sleep(0.2)
    finish.set()
    runner.join(30)
    assert outcome == ["ended"] and not client.exists(LOCK_KEY + "release")
    with exclusive(client, "release", TIMEOUT_S) as mine:
        assert mine  # free again once the run ended


def test_a_lock_that_expired_anyway_does_not_fail_the_run(client: redis.Redis) -> None:
    with exclusive(client, "sweep", TIMEOUT_S) as mine:
        assert mine
        client.delete(LOCK_KEY + "sweep")  # expired (Redis was away while the run worked)
    # no LockNotOwnedError: the block ended normally
