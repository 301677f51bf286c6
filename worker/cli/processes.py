"""Commands that run the processes: worker, beat, simulator; and `outbox db upgrade`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from worker.cli.common import console, fail, ready_runtime
from worker.infra.brokers import consumed_queues

db_app = typer.Typer(help="The database schema.", no_args_is_help=True)

# The work is waiting on the provider's answers, not on the CPU: a few task threads claim and record
# batches while the provider pool keeps many calls in flight on one connection pool. The GIL caps a
# process at one core, so a host runs one worker per core (see the README's "Throughput" section).
DEFAULT_POOL = "threads"
BENCH_IN_FLIGHT = 64  # the bench's default provider calls in flight, over all its workers


def register(app: typer.Typer) -> None:
    """Add the process commands to the root command."""
    app.command("worker")(worker)
    app.command("beat")(beat)
    app.command("web")(web)
    app.command("flower")(flower)
    app.command("demo")(demo)
    app.command("bench")(bench)
    app.command(
        "simulator",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
        add_help_option=False,
    )(simulator)


@db_app.command("upgrade")
def upgrade() -> None:
    """Bring the schema to the newest migration (safe to run at every start)."""
    ready_runtime()
    console.print("database schema is up to date")


def _celery(*args: str) -> None:
    os.execvp(sys.executable, [sys.executable, "-m", "celery", "-A", "worker.app:app", *args])


def worker(
    concurrency: int = typer.Option(
        None, help="Task threads per worker process (default: worker_concurrency); see provider_pool_size."
    ),
    hostname: str = typer.Option(None, help="Node name in Flower (default: worker-<pid>@<host>)."),
    loglevel: str = typer.Option("INFO", help="Log level."),
) -> None:
    """Run a worker on the send, status, control and callbacks queues (run one per core: see the README)."""
    from config.settings import get_settings

    settings = get_settings()
    queues = ",".join(consumed_queues(settings.broker_url))  # RabbitMQ: a send queue per lane
    concurrency = concurrency or settings.worker_concurrency
    # Several workers on one host (one per core) need names of their own, or Flower merges them.
    hostname = hostname or f"worker-{os.getpid()}@%h"
    # glibc gives each busy thread a malloc arena of its own; with 70-odd threads a worker's memory
    # creeps up with the work it has done. Two arenas keep it flat (measured by `outbox bench --memory`).
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    _celery(
        "worker",
        "-Q",
        queues,
        "--pool",
        DEFAULT_POOL,
        "--concurrency",
        str(concurrency),
        "--hostname",
        hostname,
        "-l",
        loglevel,
    )


def beat(loglevel: str = typer.Option("INFO", help="Log level.")) -> None:
    """Run beat (one per deployment): releases due work every second and runs the sweeper."""
    from config.settings import get_settings

    schedule = Path(get_settings().beat_schedule_path)
    schedule.parent.mkdir(parents=True, exist_ok=True)
    _celery("beat", "-l", loglevel, "--schedule", str(schedule))


def simulator(ctx: typer.Context) -> None:
    """Run the Zipwhip simulator (`outbox simulator --help` for its options)."""
    from simulator.cli import main as simulator_main

    simulator_main(list(ctx.args))


def web(
    host: str = typer.Option(None, help="Bind address (default: the web_host setting)."),
    port: int = typer.Option(None, help="Port (default: the web_port setting)."),
) -> None:
    """Run the web process: /metrics, /healthz and the provider's webhooks."""
    import uvicorn

    from worker.infra.logs import setup_logging
    from worker.web.app import create_app

    runtime = ready_runtime()
    setup_logging(runtime.settings.log_level)
    s = runtime.settings
    # uvicorn believes X-Forwarded-For from loopback unless told otherwise, which would let a local
    # process (or a proxy nobody configured) name any client to the webhook allow-list.
    proxies = ",".join(s.web_trusted_proxies)
    uvicorn.run(
        create_app(runtime),
        host=host or s.web_host,
        port=port or s.web_port,
        log_level="warning",
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
    )


def flower() -> None:
    """Run Flower on the broker, with basic auth and a bounded task history."""
    from config.settings import get_settings

    s = get_settings()
    # Flower reads FLOWER_BASIC_AUTH itself: the password never appears on a command line.
    os.environ["FLOWER_BASIC_AUTH"] = _checked_basic_auth(s.flower_basic_auth)
    _celery(
        "flower",
        f"--address={s.flower_host}",
        f"--port={s.flower_port}",
        f"--max_tasks={s.flower_max_tasks}",
    )


def _checked_basic_auth(value: str | None) -> str:
    """Flower's credentials, or exit naming what is wrong (never echoing them). Flower takes a
    comma-separated list of user:password pairs and lets in whoever sends one of them, so a pair
    with an empty side would open it to a browser's empty login."""
    why = "Flower shows every task to whoever opens it"
    if not value:
        fail(f"set FLOWER_BASIC_AUTH=user:password first: {why}")
    for pair in value.split(","):
        user, colon, password = pair.partition(":")
        if not colon or not user.strip() or not password.strip():
            fail(f"FLOWER_BASIC_AUTH needs user:password pairs with neither side empty: {why}")
    return value


def demo(
    messages: int = typer.Option(300, help="How many messages to send."),
    keep: bool = typer.Option(False, "--keep", help="Leave everything running at the end."),
    seed: int = typer.Option(7, help="Seed of the mix and of the simulator's faults."),
    workers: int = typer.Option(1, help="Worker processes to start."),
    timeout: float = typer.Option(300, help="Seconds to wait for every message to be final."),
    workdir: Path = typer.Option(Path(".outbox/demo"), help="Where the demo keeps its database and logs."),
) -> None:
    """Run everything locally, send a realistic mix, watch it live, print a summary."""
    from worker.dev.demo.run import DemoOptions, run_demo
    from worker.dev.devstack import StackError

    try:
        code = run_demo(
            DemoOptions(
                messages=messages, keep=keep, seed=seed, workers=workers, timeout_s=timeout, workdir=workdir
            ),
            console,
        )
    except StackError as error:
        fail(str(error))
    raise typer.Exit(code)


def bench(
    messages: int = typer.Option(5000, "-n", "--messages", help="Texts in the measured batch."),
    latency_ms: float = typer.Option(100, help="The simulator's added latency per call."),
    delivery_ms: float = typer.Option(1000, help="The simulator's time from send to final status."),
    workers: int = typer.Option(None, help="Worker processes (default: one per core, as deployed)."),
    concurrency: int = typer.Option(
        None,
        help="Provider calls in flight per worker (default: 64 in all); the baseline loop gets as many.",
    ),
    postgres: str = typer.Option(
        None, help="A PostgreSQL server URL: the bench creates and drops a database there (default SQLite)."
    ),
    webhooks: bool = typer.Option(False, "--webhooks", help="Final statuses by webhook (starts `web`)."),
    memory: str = typer.Option(
        "", help="Sizes of extra rounds through fresh workers to compare peak memory, e.g. 1000,20000."
    ),
    lines: int = typer.Option(0, help="Also a round of N lines x 5 texts at 1/s each, enqueued at once."),
    recovery: bool = typer.Option(False, "--recovery", help="Also a worker killed (SIGKILL) mid-run."),
    history: int = typer.Option(
        0, help="Write N delivered texts on the line before measuring (a long history)."
    ),
    redis_db: int = typer.Option(15, help="Redis database number the bench uses; it must be empty."),
    broker: str = typer.Option(
        None, help="Measure on RabbitMQ: an amqp:// URL of a vhost with no outbox tasks (default: Redis)."
    ),
    workdir: Path = typer.Option(Path(".outbox/bench"), help="Where the bench keeps its logs."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as one JSON object."),
) -> None:
    """Measure the pipeline against a plain thread-pooled loop on the simulator, in one run."""
    from rich.console import Console

    from worker.dev.bench.report import print_result
    from worker.dev.bench.run import BenchOptions, run_bench
    from worker.dev.devstack import StackError

    try:
        sizes = tuple(int(size) for size in memory.split(",") if size.strip())
    except ValueError:
        fail(f"--memory takes sizes like 1000,20000, not {memory!r}")
    workers = workers or os.cpu_count() or 1
    options = BenchOptions(
        messages=messages,
        latency_ms=latency_ms,
        delivery_ms=delivery_ms,
        workers=workers,
        concurrency=concurrency or max(8, BENCH_IN_FLIGHT // workers),
        postgres=postgres,
        webhooks=webhooks,
        memory_sizes=sizes,
        lines=lines,
        recovery=recovery,
        history=history,
        redis_db=redis_db,
        broker=broker,
        workdir=workdir,
    )
    progress = Console(stderr=True) if as_json else console
    try:
        result = run_bench(options, progress)
    except StackError as error:
        fail(str(error))
    print_result(result, console, as_json)
