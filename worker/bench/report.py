"""What `outbox bench` reports: the figures, the issue's targets beside them, as a table or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

# What the issue asks of this machine; printed beside the figures, never asserted in a unit test.
TARGETS = {"ratio": 0.7, "enqueue_per_s": 1000.0, "calls_per_delivered": 1.5, "calls_with_webhooks": 1.05}


@dataclass
class BenchResult:
    """Everything `outbox bench --json` prints."""

    messages: int
    latency_ms: float
    database: str
    webhooks: bool
    workers: int
    concurrency: int
    simulator_capacity_per_s: float
    baseline_per_s: float
    pipeline_per_s: float
    ratio: float
    enqueue_per_s: float
    enqueue_single_per_s: float
    final_p50_s: float
    final_p95_s: float
    calls_per_delivered: float
    worker_peak_rss_mb: float | None
    memory_rounds: list[dict[str, Any]] = field(default_factory=list)
    targets: dict[str, float] = field(default_factory=lambda: dict(TARGETS))


def print_result(result: BenchResult, console: Console, as_json: bool) -> None:
    """The figures as a table with the targets, or as one JSON object."""
    if as_json:
        print(json.dumps(asdict(result)))
        return
    calls_target = TARGETS["calls_with_webhooks"] if result.webhooks else TARGETS["calls_per_delivered"]
    table = Table(
        "figure", "value", "target", title=f"outbox bench ({result.messages} texts, {result.database})"
    )
    table.add_row("simulator capacity (sends/s)", f"{result.simulator_capacity_per_s:,.0f}", "")
    table.add_row("baseline: thread-pooled requests loop (sends/s)", f"{result.baseline_per_s:,.1f}", "")
    table.add_row("pipeline: enqueue to accepted (sends/s)", f"{result.pipeline_per_s:,.1f}", "")
    table.add_row(
        "ratio pipeline / baseline", _mark(result.ratio, TARGETS["ratio"]), f">= {TARGETS['ratio']}"
    )
    table.add_row(
        "enqueue, send_messages in bulk (texts/s, one process)",
        _mark(result.enqueue_per_s, TARGETS["enqueue_per_s"]),
        ">= 1,000",
    )
    table.add_row(
        "enqueue, one send_message call a text (texts/s)", f"{result.enqueue_single_per_s:,.0f}", ""
    )
    table.add_row("time to final status p50 / p95 (s)", f"{result.final_p50_s} / {result.final_p95_s}", "")
    table.add_row(
        "provider calls per delivered text",
        _mark(result.calls_per_delivered, calls_target, higher_is_better=False),
        f"<= {calls_target}",
    )
    table.add_row("worker peak RSS (MB)", f"{result.worker_peak_rss_mb}", "flat as N grows")
    for memory in result.memory_rounds:
        table.add_row(
            f"  worker peak RSS at N={memory['messages']:,} (MB)", f"{memory['worker_peak_rss_mb']}", ""
        )
    console.print(table)


def _mark(value: float, target: float, higher_is_better: bool = True) -> str:
    met = value >= target if higher_is_better else value <= target
    shown = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{shown} {'[green]met[/green]' if met else '[red]missed[/red]'}"
