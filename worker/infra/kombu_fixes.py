"""A correction to kombu's Redis transport, applied once when the Celery app is made.

When the Redis server goes away while a worker waits on BRPOP (a primary killed, a Sentinel
failover, a restart), Celery closes the channel twice: first while cleaning up, where reading the
pending BRPOP reply fails and aborts the close before the channel is marked closed; then after the
transport has been let go, where the unfinished close asks the gone transport for the server's
address (AttributeError) and the worker stops with "Unrecoverable error". Here the pending reply of
a lost server is given up, so the first close completes and the second does nothing: the worker
reconnects (through the Sentinels to the new primary) and goes on.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

_original_close = kombu_redis.Channel.close


def _close(self: Any) -> None:
    if self._in_poll:
        try:
            self._brpop_read()
        except kombu_redis.Empty:
            pass
        except self.connection_errors:
            pass  # the server is gone: there is no reply to wait for
    _original_close(self)


def tolerate_a_lost_server_on_close() -> None:
    """Apply the correction (idempotent)."""
    kombu_redis.Channel.close = _close  # type: ignore[method-assign]
