"""What `outbox bench` reports: the figures, the issue's targets beside them, as a table or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

# What the issues ask of this machine; printed beside the figures, never asserted in a unit test.
TARGETS = {
    "ratio": 0.7,
    "enqueue_per_s": 1000.0,
    "calls_per_delivered": 1.5,
    "calls_with_webhooks": 1.05,
    "enqueue_to_provider_p50_s": 0.1,
    "enqueue_to_provider_p95_s": 0.25,
    "urgent_wait_s": 2.0,
    "lines_last_accepted_s": 10.0,
    "recovery_s": 30.0,
    "worker_cpu_ms_per_text": 2.5,
    "history_rate_ratio": 0.9,  # the blast with a long history, against an empty database
}


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
    blast_per_s: float = 0.0  # a send_messages blast alone, enqueue to accepted
    blast_ratio: float = 0.0
    cpu_ms_per_text: dict[str, float] = field(default_factory=dict)  # in the blast, per delivered text
    http_enqueue: dict[str, float] = field(default_factory=dict)  # POST /v1/messages, single and batch
    enqueue_to_provider: dict[str, float] = field(default_factory=dict)  # p50/p95/p99, idle line
    urgent_wait_s: dict[str, float] = field(default_factory=dict)  # an urgent text behind a blast
    lines_round: dict[str, Any] | None = None
    recovery: dict[str, Any] | None = None
    history: int = 0
    history_effect: dict[str, Any] | None = None  # the blast on an empty database, then with the history
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
    if result.http_enqueue:
        http = result.http_enqueue
        table.add_row(
            "enqueue over HTTP, one POST a text (requests/s)", f"{http['single_requests_per_s']:,.0f}", ""
        )
        table.add_row(
            f"enqueue over HTTP, batches of {http['batch_size']} (texts/s)",
            f"{http['batch_texts_per_s']:,.0f}",
            "",
        )
    table.add_row("time to final status p50 / p95 (s)", f"{result.final_p50_s} / {result.final_p95_s}", "")
    table.add_row(
        "provider calls per delivered text",
        _mark(result.calls_per_delivered, calls_target, higher_is_better=False),
        f"<= {calls_target}",
    )
    table.add_row("worker peak RSS (MB)", f"{result.worker_peak_rss_mb}", "flat as N grows")
    table.add_row(
        "blast from send_messages alone (sends/s, ratio)",
        f"{result.blast_per_s:,.1f} ({result.blast_ratio})",
        "",
    )
    for role, ms in result.cpu_ms_per_text.items():
        target = TARGETS["worker_cpu_ms_per_text"] if role == "worker" else None
        shown = _mark(ms, target, higher_is_better=False) if target else f"{ms:.3g}"
        table.add_row(f"CPU per delivered text, {role} (ms)", shown, f"<= {target}" if target else "")
    _dispatcher_rows(table, result)
    for memory in result.memory_rounds:
        table.add_row(
            f"  worker peak RSS at N={memory['messages']:,} (MB)", f"{memory['worker_peak_rss_mb']}", ""
        )
    console.print(table)


def _dispatcher_rows(table: Table, result: BenchResult) -> None:
    latency = result.enqueue_to_provider
    if latency:
        p50, p95 = TARGETS["enqueue_to_provider_p50_s"], TARGETS["enqueue_to_provider_p95_s"]
        table.add_row(
            "send_message to the provider, idle line, p50 (s)",
            _mark(latency["p50_s"], p50, False),
            f"<= {p50}",
        )
        table.add_row(
            "  p95 / p99 (s)", f"{_mark(latency['p95_s'], p95, False)} / {latency['p99_s']}", f"<= {p95}"
        )
    for name, waited in result.urgent_wait_s.items():
        target = TARGETS["urgent_wait_s"]
        table.add_row(f"urgent text {name} (s)", _mark(waited, target, False), f"<= {target}")
    if result.lines_round:
        r = result.lines_round
        target = TARGETS["lines_last_accepted_s"]
        table.add_row(
            f"{r['lines']:,} lines x 5 texts: last accepted (s)",
            _mark(r["last_accepted_s"], target, False),
            f"<= {target}",
        )
        table.add_row("  provider calls per delivered text", f"{r['calls_per_delivered']}", "")
        table.add_row(
            "  release run p50 / max (s)", f"{r['release_run_p50_s']} / {r['release_run_max_s']}", ""
        )
        by_role = ", ".join(f"{k} {v:.3g}" for k, v in r.get("cpu_ms_per_text", {}).items())
        table.add_row("  CPU per text until final, by role (ms)", by_role, "")
    if result.history_effect:
        h = result.history_effect
        table.add_row(
            f"blast with {result.history:,} delivered texts / empty (rate ratio)",
            _mark(h["rate_ratio"], TARGETS["history_rate_ratio"]),
            f">= {TARGETS['history_rate_ratio']}",
        )
        table.add_row(
            "  worker CPU per text, empty / with history (ms)",
            f"{h['worker_cpu_ms_empty']} / {h['worker_cpu_ms_with_history']}",
            "",
        )
    if result.recovery:
        r, target = result.recovery, TARGETS["recovery_s"]
        table.add_row(
            f"worker killed with {r['sent_before_kill']} of {r['texts']} sent: all final (s)",
            _mark(r["all_final_s"], target, False),
            f"<= {target}",
        )
        table.add_row("  sent twice", f"{r['duplicates']}", "0")


def _mark(value: float, target: float, higher_is_better: bool = True) -> str:
    met = value >= target if higher_is_better else value <= target
    shown = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{shown} {'[green]met[/green]' if met else '[red]missed[/red]'}"
