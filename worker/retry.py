"""Retry policy as a value, and the backoff maths in one pure function."""

from __future__ import annotations

import random
from dataclasses import dataclass


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
