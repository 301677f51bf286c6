"""What a task of many messages tells Flower: one short line (ids and counts, never numbers or bodies)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

SUMMARY_DETAIL_MAX = 3  # a batch's summary lists each message up to this many; beyond, it counts


def batch_summary(summaries: Sequence[str], kinds: Sequence[str], mix: str = "") -> str:
    """Each message's summary when there are few, else how many of each kind (`mix`: what else to
    say of the whole batch, such as its priorities)."""
    if len(summaries) <= SUMMARY_DETAIL_MAX:
        return "; ".join(summaries) or "nothing to do"
    counts = Counter(kinds).most_common()
    return f"{len(summaries)} messages{mix}: " + ", ".join(f"{n} {kind}" for kind, n in counts)
