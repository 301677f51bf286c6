"""Per-line send rate shared by every worker process on every host, kept atomically in Redis.

GCRA with reservations: each release asks for up to n slots no further away than a horizon (the
release job's period) and is told when each one falls. Slots are exactly 1/rate apart, handed out
in the order they are asked for, so a line never goes faster than its rate however many hosts send
for it, and no one waits holding a worker: a send is published with its slot's countdown (always
under a second or two, far below the broker's visibility timeout). The clock is Redis's, so hosts
with skewed clocks agree.
"""

from __future__ import annotations

from redis import Redis

from worker.constants import RATE_KEY

# Written by hand: GCRA is a dozen lines, and it must be one atomic step in Redis.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local wanted = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local first = tat - now
local n = 0
while n < wanted and (tat - now) < horizon do
  n = n + 1
  tat = tat + interval
end
if n > 0 then
  redis.call('SET', KEYS[1], string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
end
return {n, string.format('%.6f', first)}
"""


class LineRateLimiter:
    """Hands out send slots per line."""

    def __init__(self, redis: Redis) -> None:
        self._reserve = redis.register_script(_RESERVE)

    def reserve(self, line_id: int, rate_per_s: float, wanted: int, horizon_s: float) -> list[float]:
        """Reserve up to `wanted` slots starting within `horizon_s`; returns each slot's wait in seconds.

        A rate of 0 (or less) means unlimited: every slot is now.
        """
        if wanted <= 0:
            return []
        if rate_per_s <= 0:
            return [0.0] * wanted
        interval = 1.0 / rate_per_s
        granted, first = self._reserve(keys=[f"{RATE_KEY}{line_id}"], args=[interval, wanted, horizon_s])
        start = float(first)
        return [start + k * interval for k in range(int(granted))]
