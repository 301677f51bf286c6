"""What the steps of a send hand each other: ids, labels and answers, never ORM rows."""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.zipwhip.client import Upload


@dataclass(frozen=True)
class Claimed:
    """Everything the provider call needs, read while the claim was taken."""

    message_id: int
    part_id: int
    label: str  # "message 42 part 1/2, high": what logs and Flower show (no number, no body)
    kind: str
    recipient: str
    body: str
    session_key: str = field(repr=False)  # a credential: never in a repr, a log or a traceback
    files: tuple[Upload, ...]
    priority: str = "normal"
    not_before: float = 0.0  # time.monotonic() before which it may not go (its line's pace)


@dataclass(frozen=True)
class Accepted:
    """The provider took the part."""

    provider_id: str
    fingerprint: str | None


@dataclass(frozen=True)
class Outcome:
    """What one send task did for one message."""

    message_id: int
    summary: str  # "message 42 part 1/1: sent as 123"
    kind: str  # a word to count by: sent, retrying, failed, ...
    final_state: str | None = None  # the message's state if it just became final
    priority: str | None = None  # of a text that was sent (or tried)
