"""Per-line send rate shared by every worker process on every host, kept atomically in Redis.

GCRA with reservations: each release asks for up to n slots no further away than a horizon (the
release job's period) and is told when each one falls. Slots are 1/rate apart (a text that costs
more, an MMS say, takes a longer slot), handed out in the order they are asked for, so a line never
goes faster than its rate however many hosts send for it, and no one waits holding a worker: a send
is published with its slot's countdown (always under a second or two, far below the broker's
visibility timeout). The clock is Redis's, so hosts with skewed clocks agree.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis import Redis

from worker.constants import RATE_KEY

# Written by hand: GCRA is a dozen lines, and it must be one atomic step in Redis.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local horizon = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local waits = {}
for i = 3, #ARGV do
  if (tat - now) >= horizon then break end
  waits[#waits + 1] = string.format('%.6f', tat - now)
  tat = tat + interval * tonumber(ARGV[i])
end
if #waits > 0 then
  redis.call('SET', KEYS[1], string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
end
return waits
"""


class LineRateLimiter:
    """Hands out send slots per line."""

    def __init__(self, redis: Redis) -> None:
        self._reserve = redis.register_script(_RESERVE)

    def reserve(
        self,
        line_id: int,
        rate_per_s: float,
        wanted: int,
        horizon_s: float,
        costs: Sequence[float] | None = None,
    ) -> list[float]:
        """Reserve up to `wanted` slots starting within `horizon_s`; returns each slot's wait in seconds.

        `costs` (one per slot, default 1) stretches a slot: a text costing 2 leaves twice the usual
        gap before the next one. A rate of 0 (or less) means unlimited: every slot is now.
        """
        if wanted <= 0:
            return []
        if rate_per_s <= 0:
            return [0.0] * wanted
        weights = list(costs) if costs is not None else [1.0] * wanted
        waits = self._reserve(
            keys=[f"{RATE_KEY}{line_id}"], args=[1.0 / rate_per_s, horizon_s, *weights[:wanted]]
        )
        return [float(wait) for wait in waits]
