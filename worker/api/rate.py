"""The request rate of each API key, counted in Redis so every web process shares it.

A fixed one-second window (INCR and EXPIRE in one round trip): simple, shared, and close enough for
a limit meant to stop a runaway client, not to shape traffic (the lines' own rates do that).
"""

from __future__ import annotations

import math
import time

from redis import Redis

from worker.infra.constants import API_RATE_KEY


def over_limit(redis: Redis, key_id: int, per_s: float, now: float | None = None) -> float | None:
    """Count one request of the key; None if it is within `per_s`, else the seconds to wait."""
    now = time.time() if now is None else now
    window = int(now)
    name = f"{API_RATE_KEY}{key_id}:{window}"
    pipe = redis.pipeline(transaction=False)
    pipe.incr(name)
    pipe.expire(name, 2)
    count = int(pipe.execute()[0])
    if count <= max(1, math.floor(per_s)):
        return None
    return max(0.001, window + 1 - now)
