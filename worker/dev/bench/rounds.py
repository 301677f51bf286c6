"""One measured round of `outbox bench`: N texts enqueued by this process, followed to a final status."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import requests
from sqlmodel import Session

from worker.dev.bench.memory import peak_rss_mb
from worker.dev.devstack import DevStack
from worker.infra.runtime import Runtime
from worker.producer.enqueue import TextRequest, enqueue, enqueue_many
from worker.store import progress
from worker.store.progress import Span

LINE = "5556661234"
PROVIDER_CALLS = ("message/send", "messaging/send", "message/get", "message/list", "conversation/get")
SINGLE_SAMPLE = 500  # texts enqueued one `send_message` call at a time; the rest go in bulk
BULK_CHUNK = 500  # texts per `send_messages` call, as a blast from a CRM would


@dataclass
class Round:
    """One batch through the pipeline."""

    messages: int
    enqueue_per_s: float  # bulk: `send_messages` with BULK_CHUNK texts a call
    enqueue_single_per_s: float  # one `send_message` call per text
    pipeline_per_s: float
    final_p50_s: float
    final_p95_s: float
    delivered: int
    provider_calls: int
    calls_per_delivered: float
    worker_peak_rss_mb: float | None


def measure_round(
    runtime: Runtime,
    stack: DevStack,
    base_url: str,
    count: int,
    timeout_s: float,
    singles: int = SINGLE_SAMPLE,
    tag: str = "Benchmark",
) -> Round:
    """Enqueue `count` texts as fast as one process can (the first `singles` one call each), then
    follow them to a final status. `tag` starts every body (rounds never repeat a text)."""
    calls_before = provider_calls(base_url)
    started = time.perf_counter()
    ids, single_per_s, bulk_per_s = _enqueue(runtime, count, singles, tag)
    span = (ids[0], ids[-1])  # the bench's own database: nobody else writes between them
    deadline = time.monotonic() + timeout_s
    wait_accepted(runtime, span, timeout_s)
    sent_s = time.perf_counter() - started
    while _messages_not_final(runtime, span) and time.monotonic() < deadline:
        time.sleep(0.2)
    with Session(runtime.engine) as session:
        rows = progress.timings(session, Span(*span))
    to_final = sorted((f - c).total_seconds() for _, c, f in rows if f is not None)
    delivered = sum(1 for state, _, _ in rows if state == "delivered")
    calls = provider_calls(base_url) - calls_before
    rss = [peak_rss_mb(p.pid) for n, p in stack.processes.items() if n.startswith("worker")]
    return Round(
        messages=count,
        enqueue_per_s=bulk_per_s,
        enqueue_single_per_s=single_per_s,
        pipeline_per_s=count / sent_s,
        final_p50_s=statistics.median(to_final) if to_final else float("nan"),
        final_p95_s=to_final[int(len(to_final) * 0.95) - 1] if to_final else float("nan"),
        delivered=delivered,
        provider_calls=calls,
        calls_per_delivered=calls / delivered if delivered else float("inf"),
        worker_peak_rss_mb=round(max(r for r in rss if r is not None), 1) if any(rss) else None,
    )


def _enqueue(runtime: Runtime, count: int, singles: int, tag: str) -> tuple[list[int], float, float]:
    """The first texts one call each, the rest in bulk; returns the ids and both rates."""
    single = min(count, singles)
    started = time.perf_counter()
    ids = [enqueue(runtime, LINE, _recipient(n), _body(tag, n)) for n in range(single)]
    bulk_started = time.perf_counter()
    for start in range(single, count, BULK_CHUNK):
        texts = [
            TextRequest(LINE, _recipient(n), _body(tag, n))
            for n in range(start, min(count, start + BULK_CHUNK))
        ]
        ids += enqueue_many(runtime, texts)
    finished = time.perf_counter()
    bulk_per_s = (count - single) / (finished - bulk_started) if count > single else float("nan")
    single_per_s = single / (bulk_started - started) if single else float("nan")
    return ids, single_per_s, bulk_per_s


def wait_accepted(runtime: Runtime, span: tuple[int, int], timeout_s: float) -> None:
    """Until the provider accepted every part of the messages in `span` (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while _parts_not_accepted(runtime, span) and time.monotonic() < deadline:
        time.sleep(0.05)


def _parts_not_accepted(runtime: Runtime, span: tuple[int, int]) -> int:
    with Session(runtime.engine) as session:
        return progress.parts_not_accepted(session, Span(*span))


def _messages_not_final(runtime: Runtime, span: tuple[int, int]) -> int:
    with Session(runtime.engine) as session:
        return progress.messages_not_final(session, Span(*span))


def _recipient(n: int) -> str:
    return f"+1206{5550000 + n % 10_000:07d}" if n < 10_000 else f"+1425{5550000 + n % 10_000:07d}"


def _body(tag: str, n: int) -> str:
    return f"{tag} text {n}: your order shipped."


def provider_calls(base_url: str) -> int:
    counters = requests.get(base_url + "_sim/counters?sends=0", timeout=10).json()
    return sum(int(counters["calls"].get(name, 0)) for name in PROVIDER_CALLS)
