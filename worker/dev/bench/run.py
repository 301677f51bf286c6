"""`outbox bench`: one run measures a plain loop and the full pipeline on the same simulator.

The simulator runs with a provider latency (100 ms by default) and no rate limit; every line rate is
off. First a thread-pooled `requests` loop sends N texts straight to it (the baseline); then the
real processes (worker, beat; the web process with --webhooks) on a database of the bench's own
take N texts enqueued from this process to a final status. The figures are ratios measured in this
run, on this machine, never absolute promises.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import requests
from rich.console import Console
from sqlalchemy import create_engine, text

from config.settings import settings_from
from simulator.loadcheck import measure_send_rate
from worker.dev.bench.baseline import baseline_rate
from worker.dev.bench.brokers import bench_env, broker_label, empty_after
from worker.dev.bench.cpu import cpu_s
from worker.dev.bench.http import http_enqueue
from worker.dev.bench.report import BenchResult
from worker.dev.bench.rounds import LINE, Round, measure_round
from worker.dev.bench.scenarios import (
    LATENCY_LINE,
    URGENT_LINE,
    enqueue_to_provider,
    log_in,
    many_lines,
    recovery,
    simulator_lines,
    urgent_behind_blast,
)
from worker.dev.devstack import DevStack, answers, free_port
from worker.infra.runtime import Runtime
from worker.store.history import prefill_delivered
from worker.store.models import utcnow

PASSWORD = "demo"
WEBHOOK_KEY = "bench-webhook-key"


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
    lines: int = 0  # the N-lines round: N lines x 5 texts at 1/s each (0: skipped)
    recovery: bool = False  # the kill -9 round
    history: int = 0  # delivered texts written on the main line before any round
    redis_db: int = 15
    broker: str | None = None  # a RabbitMQ URL (Redis then keeps only rate limits and locks)
    workdir: Path = Path(".outbox/bench")
    timeout_s: float = 900.0


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
        empty_after(stack.env)  # found empty at the start: what is there now is the bench's own


def _exit_on_term(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)


def _run(
    stack: DevStack, options: BenchOptions, database_url: str, database_kind: str, console: Console
) -> BenchResult:
    from config.settings import get_settings

    settings = get_settings()
    configured = settings.redis_url or settings.broker_url  # the broker, when it is Redis
    brokers = bench_env(stack, configured, options.redis_db, options.broker)
    sim_port = free_port()
    base_url = f"http://127.0.0.1:{sim_port}/"
    simulator = [sys.executable, "-m", "simulator", "--port", str(sim_port), "--quiet"]
    simulator += ["--latency-ms", str(options.latency_ms), "--delivery-ms", str(options.delivery_ms)]
    simulator += simulator_lines(options.lines)
    stack.start("simulator", simulator, answers(base_url + "_sim/health"))
    key = _login(base_url)
    console.print(f"simulator at {options.latency_ms:g} ms latency; measuring its capacity ...")
    capacity = measure_send_rate(base_url, key, seconds=3, threads=128)  # what the stand-in can take
    threads = options.workers * options.concurrency
    console.print(f"baseline: {options.messages} sends from a {threads}-thread requests loop ...")
    baseline = baseline_rate(base_url, key, options.messages, threads)
    requests.post(base_url + "_sim/reset", timeout=10).raise_for_status()

    stack.env = {**brokers, **_env(options, database_url, base_url, options.workdir)}
    runtime = _start_pipeline(stack, options)
    console.print(
        f"pipeline: {options.workers} worker process(es) x {options.concurrency} provider calls in flight, "
        f"{database_kind}, {broker_label(stack.env)}, "
        f"{'webhooks' if options.webhooks else 'polling only'} ..."
    )
    measure_round(runtime, stack, base_url, 50, options.timeout_s, tag="Warm-up")  # not counted
    before_history = None
    if options.history:
        console.print(f"history: a {options.messages}-text blast on an empty database, for comparison ...")
        before_history = _blast(runtime, stack, base_url, options, "Blast before history")
        console.print(f"history: {options.history:,} delivered texts on the line ...")
        line_id = _line_id(runtime)  # before the transaction: SQLite has one writer at a time
        with runtime.engine.begin() as connection:
            prefill_delivered(connection, line_id, options.history, utcnow())
    main = measure_round(runtime, stack, base_url, options.messages, options.timeout_s)
    console.print(f"blast: {options.messages} texts from send_messages alone, CPU per text by role ...")
    blast, cpu = _blast(runtime, stack, base_url, options, "Blast")
    history_effect = None
    if before_history:
        empty, empty_cpu = before_history
        history_effect = {
            "blast_per_s_empty": round(empty.pipeline_per_s, 1),
            "blast_per_s_with_history": round(blast.pipeline_per_s, 1),
            "rate_ratio": round(blast.pipeline_per_s / empty.pipeline_per_s, 3),
            "worker_cpu_ms_empty": empty_cpu.get("worker"),
            "worker_cpu_ms_with_history": cpu.get("worker"),
        }
    console.print("http: the same texts through POST /v1/messages, one a request and in batches ...")
    http = http_enqueue(runtime, f"http://127.0.0.1:{stack.env['OUTBOX_WEB_PORT']}", options.timeout_s)
    console.print("latency: 30 lone texts on an idle line, send_message to the provider ...")
    latency = enqueue_to_provider(runtime, base_url)
    console.print("urgent: a high text 2 s after a blast (10/s behind 1,000; 1/s behind 5,000) ...")
    urgent = {
        "10/s behind 1,000": urgent_behind_blast(runtime, base_url, 10.0, 1000),
        "1/s behind 5,000": urgent_behind_blast(runtime, base_url, 1.0, 5000),
    }
    lines_round = None
    if options.lines:
        console.print(f"lines: {options.lines:,} lines x 5 texts at 1/s each, enqueued at once ...")
        roles = _roles(stack)
        cpu_before = {role: sum(cpu_s(pid) for pid in pids) for role, pids in roles.items()}
        lines_round = many_lines(runtime, base_url, options.lines)
        lines_round["cpu_ms_per_text"] = {
            role: round(1000 * (sum(cpu_s(pid) for pid in pids) - cpu_before[role]) / lines_round["texts"], 2)
            for role, pids in roles.items()
        }
    recovered = None
    if options.recovery:
        console.print("recovery: a worker killed (SIGKILL) mid-run, a fresh one started ...")
        recovered = recovery(runtime, stack, base_url, lambda name: _start_worker(stack, name))
    memory_rounds = []
    for size in options.memory_sizes:
        _restart_workers(stack, options)
        console.print(f"memory: {size} messages through fresh workers ...")
        memory_rounds.append(asdict(measure_round(runtime, stack, base_url, size, options.timeout_s)))
    runtime.close()
    return BenchResult(
        messages=options.messages,
        latency_ms=options.latency_ms,
        database=f"{database_kind}, {broker_label(stack.env)}",
        webhooks=options.webhooks,
        workers=options.workers,
        concurrency=options.concurrency,
        simulator_capacity_per_s=round(capacity, 1),
        baseline_per_s=round(baseline, 1),
        pipeline_per_s=round(main.pipeline_per_s, 1),
        ratio=round(main.pipeline_per_s / baseline, 3),
        enqueue_per_s=round(main.enqueue_per_s, 1),
        enqueue_single_per_s=round(main.enqueue_single_per_s, 1),
        final_p50_s=round(main.final_p50_s, 2),
        final_p95_s=round(main.final_p95_s, 2),
        calls_per_delivered=round(main.calls_per_delivered, 3),
        worker_peak_rss_mb=main.worker_peak_rss_mb,
        blast_per_s=round(blast.pipeline_per_s, 1),
        blast_ratio=round(blast.pipeline_per_s / baseline, 3),
        cpu_ms_per_text=cpu,
        http_enqueue=http,
        enqueue_to_provider=latency,
        urgent_wait_s=urgent,
        lines_round=lines_round,
        recovery=recovered,
        history=options.history,
        history_effect=history_effect,
        memory_rounds=memory_rounds,
    )


def _blast(
    runtime: Runtime, stack: DevStack, base_url: str, options: BenchOptions, tag: str
) -> tuple[Round, dict[str, float]]:
    """A blast from `send_messages` alone, and the CPU each role spent per delivered text in it."""
    if options.history:
        # The history comparison blasts twice; each meets a simulator holding no earlier texts (its
        # message/list grows with them), so what differs between the two is the database.
        requests.post(base_url + "_sim/forget", timeout=30).raise_for_status()
    roles = _roles(stack)
    cpu_before = {role: sum(cpu_s(pid) for pid in pids) for role, pids in roles.items()}
    blast = measure_round(runtime, stack, base_url, options.messages, options.timeout_s, 0, tag)
    cpu = {
        role: round(1000 * (sum(cpu_s(pid) for pid in pids) - cpu_before[role]) / max(1, blast.delivered), 2)
        for role, pids in roles.items()
    }
    return blast, cpu


def _roles(stack: DevStack) -> dict[str, list[int | None]]:
    """The processes of each role (None: this one, the producer)."""
    roles: dict[str, list[int | None]] = {"producer": [None]}
    for name, process in stack.processes.items():
        role = "worker" if name.startswith("worker") else name
        roles.setdefault(role, []).append(process.pid)
    return roles


def _line_id(runtime: Runtime) -> int:
    from sqlmodel import Session

    from worker.store.lines import line_by_number

    with Session(runtime.engine) as session:
        line = line_by_number(session, "+1" + LINE)
        return line.id or 0 if line else 0


def _login(base_url: str) -> str:
    answer = requests.post(base_url + "user/login", data={"username": LINE, "password": PASSWORD}, timeout=10)
    return str(answer.json()["response"])


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


def _env(options: BenchOptions, database_url: str, base_url: str, workdir: Path) -> dict[str, str]:
    env = {
        "OUTBOX_DATABASE_URL": database_url,
        "ZIPWHIP_BASE_URL": base_url,
        "OUTBOX_LINE_RATE": "0",
        "OUTBOX_PROVIDER_POOL_SIZE": str(options.concurrency),
        "OUTBOX_BEAT_SCHEDULE_PATH": str((workdir / "celerybeat-schedule").resolve()),
        "OUTBOX_LOG_LEVEL": "WARNING",
    }
    env["OUTBOX_WEB_PORT"] = str(free_port())  # webhooks and the HTTP API's figure
    env["OUTBOX_API_REQUESTS_PER_S"] = "1000000"  # the bench measures the API, not its per-key limit
    if options.webhooks:
        env["OUTBOX_WEBHOOK_SECRET_KEY"] = WEBHOOK_KEY
    return env


def _start_pipeline(stack: DevStack, options: BenchOptions) -> Runtime:
    from worker.app import configure
    from worker.inbound.webhooks import register_webhooks
    from worker.infra.runtime import get_runtime
    from worker.lines import login_line

    settings = settings_from(stack.env)
    configure(settings)
    runtime = get_runtime()
    runtime.ready()
    _start_workers(stack, options)
    stack.start("beat", stack.outbox("beat", "--loglevel", "WARNING"), stack.log_contains("beat", "beat"))
    login_line(runtime, LINE, None, PASSWORD)
    log_in(runtime, [LATENCY_LINE, URGENT_LINE])
    web_url = f"http://127.0.0.1:{stack.env['OUTBOX_WEB_PORT']}"
    stack.start("web", stack.outbox("web"), answers(web_url + "/healthz"))
    if options.webhooks:
        admin = runtime.client.login(f"admin@{LINE}", PASSWORD)
        register_webhooks(runtime, admin, "+1" + LINE, web_url)
    return runtime


def _start_workers(stack: DevStack, options: BenchOptions) -> None:
    for n in range(1, options.workers + 1):
        _start_worker(stack, f"worker{n}")


def _start_worker(stack: DevStack, name: str) -> None:
    argv = stack.outbox("worker", "--hostname", f"bench-{name}@%h", "--loglevel", "INFO")
    stack.start(name, argv, stack.log_contains(name, "ready."))


def _restart_workers(stack: DevStack, options: BenchOptions) -> None:
    for name in [n for n in stack.processes if n.startswith("worker")]:
        stack.stop_one(name)
        (options.workdir / f"{name}.log").unlink(missing_ok=True)
    _start_workers(stack, options)
