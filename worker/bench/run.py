"""`outbox bench`: one run measures a plain loop and the full pipeline on the same simulator.

The simulator runs with a provider latency (100 ms by default) and no rate limit; every line rate is
off. First a thread-pooled `requests` loop sends N texts straight to it (the baseline); then the
real processes (worker, beat; the web process with --webhooks) on a database of the bench's own
take N texts enqueued from this process to a final status. The figures are ratios measured in this
run, on this machine, never absolute promises.
"""

from __future__ import annotations

import contextlib
import json
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import requests
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, func, text
from sqlmodel import Session, col, select

from config.settings import settings_from
from simulator.loadcheck import measure_send_rate
from worker.bench.baseline import baseline_rate
from worker.bench.memory import peak_rss_mb
from worker.devstack import DevStack, StackError, answers, ensure_redis, free_port
from worker.runtime import Runtime

LINE, PASSWORD = "5556661234", "demo"
PROVIDER_CALLS = ("message/send", "messaging/send", "message/get", "message/list", "conversation/get")
WEBHOOK_KEY = "bench-webhook-key"

# What the issue asks of this machine; printed beside the figures, never asserted in a unit test.
TARGETS = {"ratio": 0.7, "enqueue_per_s": 1000.0, "calls_per_delivered": 1.5, "calls_with_webhooks": 1.05}


@dataclass(frozen=True)
class BenchOptions:
    """What `outbox bench` was asked for."""

    messages: int = 5000
    latency_ms: float = 100.0
    delivery_ms: float = 1000.0
    workers: int = 1
    concurrency: int = 64
    postgres: str | None = None  # a server URL: the bench creates (and drops) a database of its own there
    webhooks: bool = False
    memory_sizes: tuple[int, ...] = ()
    redis_db: int = 15
    workdir: Path = Path(".outbox/bench")
    timeout_s: float = 900.0


@dataclass
class Round:
    """One batch through the pipeline."""

    messages: int
    enqueue_per_s: float
    pipeline_per_s: float
    final_p50_s: float
    final_p95_s: float
    delivered: int
    provider_calls: int
    calls_per_delivered: float
    worker_peak_rss_mb: float | None


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
    final_p50_s: float
    final_p95_s: float
    calls_per_delivered: float
    worker_peak_rss_mb: float | None
    memory_rounds: list[dict[str, Any]] = field(default_factory=list)
    targets: dict[str, float] = field(default_factory=lambda: dict(TARGETS))


def run_bench(options: BenchOptions, console: Console) -> BenchResult:
    """Run the benchmark and return its figures (the caller prints them)."""
    options.workdir.mkdir(parents=True, exist_ok=True)
    stack = DevStack(options.workdir)
    signal.signal(signal.SIGTERM, _exit_on_term)  # a stopped bench still stops what it started
    try:
        with _database(options) as (database_url, database_kind):
            return _run(stack, options, database_url, database_kind, console)
    finally:
        stack.stop()
        broker = stack.env.get("OUTBOX_BROKER_URL")
        if broker:  # found empty at the start: what is there now is the bench's own
            redis.Redis.from_url(broker).flushdb()


def _exit_on_term(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)


def _run(
    stack: DevStack, options: BenchOptions, database_url: str, database_kind: str, console: Console
) -> BenchResult:
    from config.settings import get_settings

    broker = _empty_broker(stack, get_settings().broker_url, options.redis_db)
    sim_port = free_port()
    base_url = f"http://127.0.0.1:{sim_port}/"
    simulator = [sys.executable, "-m", "simulator", "--port", str(sim_port), "--quiet"]
    simulator += ["--latency-ms", str(options.latency_ms), "--delivery-ms", str(options.delivery_ms)]
    stack.start("simulator", simulator, answers(base_url + "_sim/health"))
    key = _login(base_url)
    console.print(f"simulator at {options.latency_ms:g} ms latency; measuring its capacity ...")
    capacity = measure_send_rate(base_url, key, seconds=3, threads=128)  # what the stand-in can take
    threads = options.workers * options.concurrency
    console.print(f"baseline: {options.messages} sends from a {threads}-thread requests loop ...")
    baseline = baseline_rate(base_url, key, options.messages, threads)
    requests.post(base_url + "_sim/reset", timeout=10).raise_for_status()

    stack.env = _env(options, broker, database_url, base_url, options.workdir)
    runtime = _start_pipeline(stack, options)
    console.print(
        f"pipeline: {options.workers} worker process(es) x {options.concurrency} threads, "
        f"{database_kind}, {'webhooks' if options.webhooks else 'polling only'} ..."
    )
    _round(runtime, stack, base_url, 50, options.timeout_s)  # warm the pools; not counted
    main = _round(runtime, stack, base_url, options.messages, options.timeout_s)
    memory_rounds = []
    for size in options.memory_sizes:
        _restart_workers(stack, options)
        console.print(f"memory: {size} messages through fresh workers ...")
        memory_rounds.append(asdict(_round(runtime, stack, base_url, size, options.timeout_s)))
    runtime.close()
    return BenchResult(
        messages=options.messages,
        latency_ms=options.latency_ms,
        database=database_kind,
        webhooks=options.webhooks,
        workers=options.workers,
        concurrency=options.concurrency,
        simulator_capacity_per_s=round(capacity, 1),
        baseline_per_s=round(baseline, 1),
        pipeline_per_s=round(main.pipeline_per_s, 1),
        ratio=round(main.pipeline_per_s / baseline, 3),
        enqueue_per_s=round(main.enqueue_per_s, 1),
        final_p50_s=round(main.final_p50_s, 2),
        final_p95_s=round(main.final_p95_s, 2),
        calls_per_delivered=round(main.calls_per_delivered, 3),
        worker_peak_rss_mb=main.worker_peak_rss_mb,
        memory_rounds=memory_rounds,
    )


def _login(base_url: str) -> str:
    answer = requests.post(base_url + "user/login", data={"username": LINE, "password": PASSWORD}, timeout=10)
    return str(answer.json()["response"])


def _empty_broker(stack: DevStack, configured: str, db: int) -> str:
    """The configured Redis, on a database number of the bench's own that must be empty: the bench's
    workers must not take a real deployment's tasks, nor leave theirs behind."""
    parts = urlsplit(configured)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))
    url = ensure_redis(stack, url)
    if redis.Redis.from_url(url).dbsize():
        raise StackError(
            f"Redis database {db} at {parts.netloc} is not empty: pass --redis-db N of an empty one"
        )
    return url


@contextlib.contextmanager
def _database(options: BenchOptions) -> Iterator[tuple[str, str]]:
    """A database of the bench's own: a SQLite file in the workdir, or a throwaway PostgreSQL one."""
    if options.postgres is None:
        path = (options.workdir / "bench.db").resolve()
        for old in options.workdir.glob("bench.db*"):
            old.unlink()
        yield f"sqlite:///{path}", "SQLite"
        return
    name = f"outbox_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(options.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin.url.set(database=name).render_as_string(hide_password=False)
        yield url, "PostgreSQL"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _env(
    options: BenchOptions, broker: str, database_url: str, base_url: str, workdir: Path
) -> dict[str, str]:
    env = {
        "OUTBOX_BROKER_URL": broker,
        "OUTBOX_DATABASE_URL": database_url,
        "ZIPWHIP_BASE_URL": base_url,
        "OUTBOX_LINE_RATE": "0",
        "OUTBOX_WORKER_CONCURRENCY": str(options.concurrency),
        "OUTBOX_PROVIDER_POOL_SIZE": str(options.concurrency),
        "OUTBOX_BEAT_SCHEDULE_PATH": str((workdir / "celerybeat-schedule").resolve()),
        "OUTBOX_LOG_LEVEL": "WARNING",
    }
    if options.webhooks:
        env["OUTBOX_WEB_PORT"] = str(free_port())
        env["OUTBOX_WEBHOOK_SECRET_KEY"] = WEBHOOK_KEY
    return env


def _start_pipeline(stack: DevStack, options: BenchOptions) -> Runtime:
    from worker.app import configure
    from worker.lines import login_line
    from worker.runtime import get_runtime
    from worker.store.db import migrate
    from worker.webhooks import register_webhooks

    settings = settings_from(stack.env)
    configure(settings)
    runtime = get_runtime()
    migrate(runtime.engine)
    _start_workers(stack, options)
    stack.start("beat", stack.outbox("beat", "--loglevel", "WARNING"), stack.log_contains("beat", "beat"))
    login_line(runtime, LINE, None, PASSWORD)
    if options.webhooks:
        web_url = f"http://127.0.0.1:{stack.env['OUTBOX_WEB_PORT']}"
        stack.start("web", stack.outbox("web"), answers(web_url + "/healthz"))
        admin = runtime.client.login(f"admin@{LINE}", PASSWORD)
        register_webhooks(runtime, admin, "+1" + LINE, web_url)
    return runtime


def _start_workers(stack: DevStack, options: BenchOptions) -> None:
    for n in range(1, options.workers + 1):
        argv = stack.outbox("worker", "--hostname", f"bench{n}@%h", "--loglevel", "INFO")
        stack.start(f"worker{n}", argv, stack.log_contains(f"worker{n}", "ready."))


def _restart_workers(stack: DevStack, options: BenchOptions) -> None:
    for name in [n for n in stack.processes if n.startswith("worker")]:
        stack.stop_one(name)
        (options.workdir / f"{name}.log").unlink(missing_ok=True)
    _start_workers(stack, options)


def _round(runtime: Runtime, stack: DevStack, base_url: str, count: int, timeout_s: float) -> Round:
    """Enqueue `count` texts as fast as one process can, then follow them to a final status."""
    from worker.enqueue import enqueue
    from worker.store.models import Message, Part
    from worker.store.states import FINAL_STATES, NOT_YET_ACCEPTED

    calls_before = _provider_calls(base_url)
    started = time.perf_counter()
    enqueued = [
        enqueue(runtime, LINE, _recipient(n), f"Benchmark text {n}: your order shipped.")
        for n in range(count)
    ]
    enqueued_s = time.perf_counter() - started
    ids = (enqueued[0], enqueued[-1])  # the bench's own database: nobody else writes between them
    unaccepted = [s.value for s in NOT_YET_ACCEPTED]
    final = [s.value for s in FINAL_STATES]

    def parts_not_accepted() -> int:
        query = select(func.count()).where(
            col(Part.message_id).between(*ids), col(Part.state).in_(unaccepted)
        )
        with Session(runtime.engine) as session:
            return int(session.exec(query).one())

    def messages_not_final() -> int:
        query = select(func.count()).where(col(Message.id).between(*ids), col(Message.state).not_in(final))
        with Session(runtime.engine) as session:
            return int(session.exec(query).one())

    deadline = time.monotonic() + timeout_s
    while parts_not_accepted() and time.monotonic() < deadline:
        time.sleep(0.05)
    sent_s = time.perf_counter() - started
    while messages_not_final() and time.monotonic() < deadline:
        time.sleep(0.2)
    with Session(runtime.engine) as session:
        rows = session.exec(
            select(Message.state, Message.created_at, Message.final_at).where(col(Message.id).between(*ids))
        ).all()
    to_final = sorted((f - c).total_seconds() for _, c, f in rows if f is not None)
    delivered = sum(1 for state, _, _ in rows if state == "delivered")
    calls = _provider_calls(base_url) - calls_before
    rss = [peak_rss_mb(p.pid) for n, p in stack.processes.items() if n.startswith("worker")]
    return Round(
        messages=count,
        enqueue_per_s=count / enqueued_s,
        pipeline_per_s=count / sent_s,
        final_p50_s=statistics.median(to_final) if to_final else float("nan"),
        final_p95_s=to_final[int(len(to_final) * 0.95) - 1] if to_final else float("nan"),
        delivered=delivered,
        provider_calls=calls,
        calls_per_delivered=calls / delivered if delivered else float("inf"),
        worker_peak_rss_mb=round(max(r for r in rss if r is not None), 1) if any(rss) else None,
    )


def _recipient(n: int) -> str:
    return f"+1206{5550000 + n % 10_000:07d}" if n < 10_000 else f"+1425{5550000 + n % 10_000:07d}"


def _provider_calls(base_url: str) -> int:
    counters = requests.get(base_url + "_sim/counters?sends=0", timeout=10).json()
    return sum(int(counters["calls"].get(name, 0)) for name in PROVIDER_CALLS)


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
        "enqueue (messages/s, one process)", _mark(result.enqueue_per_s, TARGETS["enqueue_per_s"]), ">= 1,000"
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
    return f"{value:,.3g} {'[green]met[/green]' if met else '[red]missed[/red]'}"
