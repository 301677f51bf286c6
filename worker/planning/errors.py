"""The planning error: every problem with a request to send, named together."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request, and where."""

    field: str  # "line", "to", "body", "attachments[1]", ...
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class PlanningError(ValueError):
    """Raised when a request cannot be sent as asked; lists every problem at once."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        if not self.problems:
            return "invalid message"
        return "invalid message: " + "; ".join(str(p) for p in self.problems)


class IdempotencyConflict(PlanningError):
    """Raised when an idempotency key already stands for a different request (an HTTP API's 409):
    every problem names `idempotency_key`. The same key with the same request is no error."""
