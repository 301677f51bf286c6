"""The rate limiter across a Redis failover: a replica promoted without the last reservations (real
asynchronous replication, really lost) still hands out no slot that overlaps one handed out before."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.support.redis_servers import sentinel_deployment
from tests.support.stack import wait_for
from worker.infra.constants import RATE_KEY
from worker.infra.ratelimit import LineRateLimiter
from worker.infra.redis_client import redis_client

RATE = 10.0
HORIZON_S = 1.0


def test_slots_lost_with_a_dead_primary_are_not_handed_out_again(tmp_path: Path) -> None:
    with sentinel_deployment(tmp_path) as sentinels:
        limiter = LineRateLimiter(redis_client(sentinels.url(db=1)))
        limiter.reserve(7, RATE, 3, HORIZON_S)  # known to every server, with the epoch
        sentinels.replicated()
        primary, replica = (
            sentinels.primary(),
            next(s for s in sentinels.servers if s is not sentinels.primary()),
        )

        replica.process.send_signal(signal.SIGSTOP)  # it can neither hear the next write nor reconnect
        primary.client().execute_command("CLIENT", "KILL", "TYPE", "replica")
        lost = limiter.reserve(7, RATE, 10, HORIZON_S)
        lost_last = time.time() + lost[-1]  # the latest any of them may go out
        primary.stop(signal.SIGKILL)  # dies with the reservation unreplicated
        replica.process.send_signal(signal.SIGCONT)
        new_primary = sentinels.await_new_primary(primary)
        assert new_primary is replica
        lost_tat = float(primary_tat_seen_by(new_primary, 7))
        assert lost_tat < lost_last, "the promoted replica still had the reservation: nothing was lost"

        assert limiter.reserve(7, RATE, 10, HORIZON_S) == []  # a pause of one horizon: no slot yet
        first = wait_for(lambda: _first_slot(limiter), 10, 0.05, "slots from the new primary")
        assert first >= lost_last + 1 / RATE, (lost, first - lost_last)


def _first_slot(limiter: LineRateLimiter) -> float | None:
    asked = time.time()
    waits = limiter.reserve(7, RATE, 10, HORIZON_S)
    return asked + waits[0] if waits else None


def primary_tat_seen_by(server: object, line_id: int) -> float:
    raw = server.client(db=1).get(f"{RATE_KEY}{line_id}")  # type: ignore[attr-defined]
    return float(raw or 0)
