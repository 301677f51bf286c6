"""Per-line send rate shared by every worker process on every host, kept atomically in Redis.

GCRA with reservations: each release asks for up to n slots no further away than a horizon (the
release job's period) and is told when each one falls. Slots are 1/rate apart (a text that costs
more, an MMS say, takes a longer slot), handed out in the order they are asked for, so a line never
goes faster than its rate however many hosts send for it, and no one waits holding a worker: a send
is published with its slot's countdown (always under a second or two, far below the broker's
visibility timeout). The clock is Redis's, so hosts with skewed clocks agree. One call reserves for
any number of lines, so a release run costs one round trip however many lines have work.

Redis that fails over (Sentinel) replicates asynchronously: a replica promoted after its primary
died may lack the last reservations, and would hand those slots out again. The script notes which
server wrote last (its run id, in the epoch key); a server that finds another's note has just become
the primary (or restarted from disk), and gives no slot sooner than one pause from now to any
line: the horizon, plus how long the fence's confirmation of a primary lasts (`primary_fence`: no
reservation is made on an old primary later than that after its failover began). Every slot the old
primary handed out started within a horizon of its reservation: none can overlap a new one (as long
as the Redis hosts' clocks agree). A failover costs each line a pause of about two seconds.
Behind Sentinels a server with no note at all pauses too: it may be a replica promoted before it
ever synced (it lacks every reservation, the note with them), and it cannot tell that from a first
start, which so costs one pause once. One server alone (no fence) has no other primary to fear: an
emptied one (restarted with nothing kept, FLUSHDB) is not recognised, and may let a line go over its
rate for one horizon.

Slots are reserved when sends are released; a worker that falls behind runs them late, and two
late texts of a line would then go together. So the send itself passes a second gate (`pace`): the
line's sends, as they really go, are kept one interval apart, and a text far behind its line's pace
is handed back rather than held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis

from worker.infra.constants import PACE_KEY, RATE_EPOCH_KEY, RATE_FLOOR_KEY, RATE_KEY
from worker.infra.primary_fence import PrimaryFence

# Written by hand: GCRA is a dozen lines, and it must be one atomic step in Redis.
# KEYS: the epoch key, the floor key, then one key per line. ARGV: horizon, the pause after a change
# of server, whether a server with no note pauses too (1: behind Sentinels), then per line: interval,
# n, and n costs. Returns one list of waits per line.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local horizon = tonumber(ARGV[1])
local pause = tonumber(ARGV[2])
local server = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
local epoch = redis.call('GET', KEYS[1])
if epoch ~= server and (epoch or ARGV[3] == '1') then
  redis.call('SET', KEYS[2], string.format('%.6f', now + pause), 'PX', math.ceil(pause * 1000) + 1000)
end
if epoch ~= server then redis.call('SET', KEYS[1], server) end
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
local at = 4
local out = {}
for k = 3, #KEYS do
  local interval = tonumber(ARGV[at])
  local n = tonumber(ARGV[at + 1])
  local tat = tonumber(redis.call('GET', KEYS[k]) or '0')
  if tat < now then tat = now end
  if tat < floor then tat = floor end
  local waits = {}
  for i = 1, n do
    if (tat - now) >= horizon then break end
    waits[#waits + 1] = string.format('%.6f', tat - now)
    tat = tat + interval * tonumber(ARGV[at + 1 + i])
  end
  at = at + 2 + n
  if #waits > 0 then
    redis.call('SET', KEYS[k], string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
  end
  out[k - 2] = waits
end
return out
"""

# KEYS: one pace key per text about to go (a line may come twice). ARGV: the longest wait to reserve,
# then per text: the gap it leaves before its line's next send (interval x cost). Returns per text the
# wait before it may go; a text whose wait is longer than the limit is not reserved (it is handed back).
_PACE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local longest = tonumber(ARGV[1])
local out = {}
for k = 1, #KEYS do
  local at = tonumber(redis.call('GET', KEYS[k]) or '0')
  if at < now then at = now end
  out[k] = string.format('%.6f', at - now)
  if tonumber(out[k]) <= longest then  -- the caller compares the same rounded number
    local after = at + tonumber(ARGV[k + 1])
    redis.call('SET', KEYS[k], string.format('%.6f', after), 'PX', math.ceil((after - now) * 1000) + 1000)
  end
end
return out
"""


@dataclass(frozen=True)
class Going:
    """A text about to be sent: its line, and the gap it leaves before the line's next send."""

    line_id: int
    gap_s: float


@dataclass(frozen=True)
class Wanted:
    """Slots one line asks for: its rate and what each slot costs (an SMS 1)."""

    line_id: int
    rate_per_s: float
    costs: Sequence[float]


class LineRateLimiter:
    """Hands out send slots per line: on `redis`, or through Sentinels on the primary `fence` confirms."""

    def __init__(self, redis: Redis, fence: PrimaryFence | None = None) -> None:
        self._reserve = redis.register_script(_RESERVE)
        self._pace = redis.register_script(_PACE)
        self._fence = fence

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
        weights = list(costs)[:wanted] if costs is not None else [1.0] * wanted
        return self.reserve_many([Wanted(line_id, rate_per_s, weights)], horizon_s)[line_id]

    def reserve_many(self, wanted: Sequence[Wanted], horizon_s: float) -> dict[int, list[float]]:
        """Reserve slots for many lines in one round trip; the waits of each line's slots, by line."""
        waits: dict[int, list[float]] = {w.line_id: [0.0] * len(w.costs) for w in wanted if w.rate_per_s <= 0}
        limited = [w for w in wanted if w.rate_per_s > 0 and w.costs]
        waits.update({w.line_id: [] for w in wanted if w.rate_per_s > 0})
        if not limited:
            return waits
        confirmed = self._fence.primary() if self._fence else None
        if self._fence and confirmed is None:
            return waits  # no primary in good standing: no slot for anyone
        pause = horizon_s + (self._fence.confirm_s if self._fence else 0.0)
        args: list[float] = [horizon_s, pause, 1 if self._fence else 0]
        for w in limited:
            args += [1.0 / w.rate_per_s, len(w.costs), *w.costs]
        answers = self._reserve(
            keys=[RATE_EPOCH_KEY, RATE_FLOOR_KEY, *(f"{RATE_KEY}{w.line_id}" for w in limited)],
            args=args,
            client=confirmed.client if confirmed else None,
        )
        if self._fence and confirmed and not self._fence.holds(confirmed):
            return waits  # the reservation outlasted its confirmation: its slots may be a lost primary's
        for w, answer in zip(limited, answers, strict=True):
            waits[w.line_id] = [float(wait) for wait in answer]
        return waits

    def pace(self, going: Sequence[Going], longest_wait_s: float) -> list[float]:
        """How long each text must wait so that its line's sends really go one gap apart (in this
        order); a text whose wait is over `longest_wait_s` gets no place in its line's pace (the
        caller hands it back for later). Texts with no gap (an unlimited line) never wait."""
        waits = [0.0] * len(going)
        paced = [n for n, g in enumerate(going) if g.gap_s > 0]
        if not paced:
            return waits
        confirmed = self._fence.primary() if self._fence else None
        if self._fence and confirmed is None:
            return waits  # no primary in good standing: the slots reserved at release still hold
        answers = self._pace(
            keys=[f"{PACE_KEY}{going[n].line_id}" for n in paced],
            args=[longest_wait_s, *(going[n].gap_s for n in paced)],
            client=confirmed.client if confirmed else None,
        )
        for n, answer in zip(paced, answers, strict=True):
            waits[n] = float(answer)
        return waits
