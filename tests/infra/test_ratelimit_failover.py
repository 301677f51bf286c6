"""The rate limiter across a Redis failover: a replica promoted without the last reservations (real
asynchronous replication, really lost) still hands out no slot that overlaps one handed out before,
and an old primary that still takes writes after `SENTINEL FAILOVER` is not used for slots."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.support.rates import busiest
from tests.support.redis_servers import role, sentinel_deployment
from tests.support.stack import wait_for
from worker.infra.constants import RATE_KEY
from worker.infra.primary_fence import primary_fence
from worker.infra.ratelimit import LineRateLimiter
from worker.infra.redis_client import redis_client

RATE = 10.0
HORIZON_S = 1.0


def limiter_for(url: str) -> LineRateLimiter:
    """The limiter as every process builds it (Runtime.limiter)."""
    return LineRateLimiter(redis_client(url), primary_fence(url))


@pytest.mark.parametrize("note", ["replicated", "never replicated"])
def test_slots_lost_with_a_dead_primary_are_not_handed_out_again(tmp_path: Path, note: str) -> None:
    # "never replicated": the replica is promoted without ever having had the note of which server
    # hands out slots (a replica promoted before it synced); it must pause as after any change of server.
    with sentinel_deployment(tmp_path) as sentinels:
        limiter = limiter_for(sentinels.url(db=1))
        if note == "replicated":
            wait_for(lambda: limiter.reserve(7, RATE, 3, HORIZON_S), 15, 0.05, "the first slots")
            sentinels.replicated()  # the note (and the line's slots) known to every server
        primary, replica = (
            sentinels.primary(),
            next(s for s in sentinels.servers if s is not sentinels.primary()),
        )

        replica.process.send_signal(signal.SIGSTOP)  # it can neither hear the next write nor reconnect
        primary.client().execute_command("CLIENT", "KILL", "TYPE", "replica")
        lost = wait_for(lambda: limiter.reserve(7, RATE, 10, HORIZON_S), 15, 0.05, "slots on the primary")
        lost_last = time.time() + lost[-1]  # the latest any of them may go out
        primary.stop(signal.SIGKILL)  # dies with the reservation unreplicated
        replica.process.send_signal(signal.SIGCONT)
        new_primary = sentinels.await_new_primary(primary)
        assert new_primary is replica
        lost_tat = float(primary_tat_seen_by(new_primary, 7))
        assert lost_tat < lost_last, "the promoted replica still had the reservation: nothing was lost"

        assert limiter.reserve(7, RATE, 10, HORIZON_S) == []  # a pause: no slot yet
        first = wait_for(lambda: _first_slot(limiter), 15, 0.05, "slots from the new primary")
        assert first >= lost_last + 1 / RATE, (lost, first - lost_last)


def test_an_old_primary_taking_writes_after_a_failover_hands_out_no_slot(tmp_path: Path) -> None:
    # The old primary cannot be demoted (its REPLICAOF is renamed away): the window in which it still
    # takes writes after `SENTINEL FAILOVER`, a second or two in life, stays open for the whole test.
    unreachable = ["rename-command REPLICAOF demote-me-later", "rename-command SLAVEOF demote-me-too"]
    with sentinel_deployment(tmp_path, primary_config=unreachable) as sentinels:
        url = sentinels.url(db=1)
        early = limiter_for(url)  # a worker connected before the failover
        slots = wait_for(
            lambda: _absolute(early.reserve(7, RATE, 10, HORIZON_S)), 15, 0.05, "early's first slots"
        )
        slots += _absolute(early.reserve(7, RATE, 10, HORIZON_S))  # the rest of its horizon
        sentinels.replicated()  # the case of a replica that lacks the note is the test above
        old = sentinels.primary()
        sentinels.fail_over(kill=False, demoted=False)

        late = limiter_for(url)  # a worker connected after it
        slots += wait_for(lambda: _absolute(late.reserve(7, RATE, 10, HORIZON_S)), 15, 0.05, "late's slots")
        slots += wait_for(lambda: _absolute(early.reserve(7, RATE, 10, HORIZON_S)), 15, 0.05, "early's slots")
        slots += _absolute(late.reserve(7, RATE, 10, HORIZON_S))

        assert role(old) == b"master", "the old primary still took writes throughout"
        assert busiest(sorted(slots), window_s=1.0) <= RATE + 1, sorted(slots)


def _absolute(waits: list[float]) -> list[float]:
    now = time.time()
    return [now + wait for wait in waits]


def _first_slot(limiter: LineRateLimiter) -> float | None:
    asked = time.time()
    waits = limiter.reserve(7, RATE, 10, HORIZON_S)
    return asked + waits[0] if waits else None


def primary_tat_seen_by(server: object, line_id: int) -> float:
    raw = server.client(db=1).get(f"{RATE_KEY}{line_id}")  # type: ignore[attr-defined]
    return float(raw or 0)
