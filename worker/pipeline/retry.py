"""Retrying, in one vocabulary: the provider's retryable answers wait in the database under a
`RetryPolicy` (backoff as one pure function); our own infrastructure failing (`INFRASTRUCTURE_ERRORS`)
makes Celery run the same task again shortly (same task id, so a send task that had claimed its part
recognises itself and reconciles instead of sending twice). Nothing else is retried: an error that
says something about the data (a bug, a bad row) would fail the same way again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# Connections refused or dropped, deadlocks and serialisation failures (OperationalError), a pool
# with no connection free: the same work succeeds once the database or Redis is back.
INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a retryable send is tried again."""

    max_attempts: int = 6
    base_s: float = 2.0
    max_s: float = 300.0

    def exhausted(self, attempts: int) -> bool:
        """True when no attempt is left."""
        return attempts >= self.max_attempts

    def delay_s(
        self, attempt: int, retry_after_s: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Wait before the attempt after `attempt` (1-based): doubling, capped, with jitter.

        Jitter spreads retries of many messages that failed together (half to full delay), and a
        provider's Retry-After is a floor, never shortened.
        """
        ceiling = min(self.max_s, self.base_s * 2 ** max(0, attempt - 1))
        jittered = ceiling * (0.5 + 0.5 * (rng or random).random())
        return max(jittered, retry_after_s or 0.0)
