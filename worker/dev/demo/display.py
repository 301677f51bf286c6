"""The demo's live view of states, and its closing summary."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from sqlmodel import Session

from worker.store.progress import messages_and_kinds, state_counts
from worker.store.states import FINAL_STATES, State

ORDER = [s.value for s in State]


def _view(counts: Counter[str], total: int, progress: Progress, task: int, elapsed: float) -> Group:
    table = Table("state", "messages", title=f"outbox demo: {elapsed:4.0f}s", min_width=40)
    for state in ORDER:
        if counts.get(state):
            style = "green" if state == "delivered" else "red" if state in ("failed", "rejected") else ""
            table.add_row(f"[{style}]{state}[/]" if style else state, str(counts[state]))
    done = sum(counts[s.value] for s in FINAL_STATES)
    progress.update(task, completed=done, total=total)  # type: ignore[arg-type]
    return Group(table, progress)


def watch(engine: object, total: int, timeout_s: float, console: Console) -> bool:
    """Show states live until every message is final (True) or the time is up (False)."""
    progress = Progress(TextColumn("final"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    task = progress.add_task("final", total=total)
    started = time.monotonic()
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while True:
            with Session(engine) as session:  # type: ignore[arg-type]
                counts = state_counts(session)
            elapsed = time.monotonic() - started
            live.update(_view(counts, total, progress, task, elapsed))
            if sum(counts[s.value] for s in FINAL_STATES) >= total:
                return True
            if elapsed > timeout_s:
                return False
            time.sleep(0.5)


@dataclass(frozen=True)
class Outcome:
    """How one demo message ended."""

    kind: str
    expected: str
    state: str
    parts: tuple[str, ...]
    seconds_to_final: float | None


def outcomes(session: Session, expected: dict[int, tuple[str, str]]) -> dict[int, Outcome]:
    """The final state, parts and time to final of every demo message."""
    messages, kinds = messages_and_kinds(session, list(expected))
    result = {}
    for m in messages:
        seconds = (m.final_at - m.created_at).total_seconds() if m.final_at else None
        kind, want = expected[m.id or 0]
        result[m.id or 0] = Outcome(kind, want, m.state, tuple(kinds.get(m.id or 0, [])), seconds)
    return result


def summary_table(results: dict[int, Outcome], refused_at_enqueue: Counter[str]) -> Table:
    """Messages per kind and final state, with the parts they went out as."""
    table = Table(
        "kind", "messages", "delivered", "failed", "rejected", "not final", "parts sent as", title="summary"
    )
    for kind in sorted({o.kind for o in results.values()} | set(refused_at_enqueue)):
        group = [o for o in results.values() if o.kind == kind]
        states = Counter(o.state for o in group)
        parts = Counter(p for o in group for p in o.parts)
        not_final = sum(n for s, n in states.items() if s not in {f.value for f in FINAL_STATES})
        refused = refused_at_enqueue.get(kind, 0)
        table.add_row(
            kind,
            str(len(group) + refused),
            str(states["delivered"]),
            str(states["failed"]),
            str(states["rejected"] + refused) + (f" ({refused} at enqueue)" if refused else ""),
            str(not_final),
            ", ".join(f"{n} {k.upper()}" for k, n in sorted(parts.items())),
        )
    return table


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the values fall."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(share * 100) - 1]
