"""Which Redis server may hand out rate slots while Sentinels fail the primary over.

Replication is asynchronous, and a `SENTINEL FAILOVER` leaves the old primary taking writes from
connections already open to it until the Sentinels demote it, a second or more after its replica
was promoted. A slot reserved there in that window is lost with the old primary's data: the new
primary would hand it out again, and a line would go over its rate.

So the rate limiter reserves only on the server the Sentinels name as primary, confirmed within the
last `confirm_s`: a majority of the Sentinels answer, all name the same server, and none reports it
down or in a failover. A reservation that took longer than its confirmation lasts is dropped. Every
slot the old primary handed out then starts before (failover start + confirm_s + horizon); the new
primary, which no one uses before the Sentinels name it, gives no slot sooner than (its first
reservation + horizon + confirm_s) (the rate script's pause after a change of server). None overlap.

Written by hand: redis-py's Sentinel pool picks the primary when it connects and keeps the connection
while the old primary answers; nothing in it says "this server is still the primary now".
The guarantee needs the Sentinel leading the failover among those that answer (it alone reports the
failover in progress until the others learn the new primary).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from time import monotonic
from typing import cast

from redis import Redis, RedisError

from worker.infra.redis_client import CONNECT_TIMEOUT_S, SOCKET_TIMEOUT_S, is_sentinel_url, parse_sentinel_url

log = logging.getLogger(__name__)

CONFIRM_S = 1.0  # how long a confirmation lasts; a failover pauses every line this much longer
RECHECK_S = 0.2  # how long an unconfirmed primary stays unconfirmed before the Sentinels are asked again
ASK_TIMEOUT_S = 0.5  # a Sentinel that does not answer in this time is left out of the count
NOT_IN_GOOD_STANDING = frozenset({"s_down", "o_down", "failover_in_progress"})


@dataclass(frozen=True)
class Confirmed:
    """The primary's client, and when (monotonic) the Sentinels were asked."""

    client: Redis
    asked_at: float


class PrimaryFence:
    """Tells the rate limiter which server is the primary now, or that none is confirmed."""

    def __init__(
        self, url: str, confirm_s: float = CONFIRM_S, sentinels: Sequence[Redis] | None = None
    ) -> None:
        """`sentinels` replaces the clients of the URL's Sentinels (a test's stand-ins)."""
        parsed = parse_sentinel_url(url)
        self.confirm_s = confirm_s
        self._master = parsed.master
        self._sentinels = (
            list(sentinels)
            if sentinels is not None
            else [
                Redis(
                    host=host,
                    port=port,
                    password=parsed.sentinel_password,
                    socket_timeout=ASK_TIMEOUT_S,
                    socket_connect_timeout=ASK_TIMEOUT_S,
                )
                for host, port in parsed.sentinels
            ]
        )
        self._server_options = {
            "db": parsed.db,
            "username": parsed.username,
            "password": parsed.password,
            "socket_timeout": SOCKET_TIMEOUT_S,
            "socket_connect_timeout": CONNECT_TIMEOUT_S,
        }
        self._clients: dict[tuple[str, int], Redis] = {}
        self._confirmed: Confirmed | None = None
        self._refused_at = float("-inf")
        self._lock = threading.Lock()

    def primary(self) -> Confirmed | None:
        """The confirmed primary, asking the Sentinels when the last confirmation has run out."""
        with self._lock:
            now = monotonic()
            if self._confirmed is not None and self.holds(self._confirmed):
                return self._confirmed
            if now - self._refused_at < RECHECK_S:
                return None
            address = self._ask_sentinels()
            if address is None:
                if self._confirmed is not None:
                    log.warning("no rate slots until the Sentinels agree on a primary in good standing")
                self._confirmed, self._refused_at = None, now
                return None
            if address not in self._clients:
                self._clients[address] = Redis(host=address[0], port=address[1], **self._server_options)  # type: ignore[arg-type]
            self._confirmed = Confirmed(self._clients[address], now)
            return self._confirmed

    def holds(self, confirmed: Confirmed) -> bool:
        """Whether the confirmation still covers what is done on that server now."""
        return monotonic() - confirmed.asked_at < self.confirm_s

    def _ask_sentinels(self) -> tuple[str, int] | None:
        named: set[tuple[str, int]] = set()
        answered = 0
        for sentinel in self._sentinels:
            try:
                state = cast(dict[str, object], sentinel.sentinel_master(self._master))
            except RedisError:
                continue
            answered += 1
            if NOT_IN_GOOD_STANDING & set(str(state["flags"]).split(",")):
                return None
            named.add((str(state["ip"]), int(str(state["port"]))))
        if answered * 2 <= len(self._sentinels) or len(named) != 1:
            return None
        return named.pop()


def primary_fence(url: str) -> PrimaryFence | None:
    """A fence for a Sentinel URL; None for one server, which has no other primary to fear."""
    return PrimaryFence(url) if is_sentinel_url(url) else None
