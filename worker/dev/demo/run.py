"""`outbox demo`: start everything, send a realistic mix, watch it to the end, summarise."""

from __future__ import annotations

import secrets
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import requests
from rich.console import Console
from sqlmodel import Session

from config.settings import Settings, get_settings, settings_from
from worker.dev.demo.display import Outcome, outcomes, percentile, summary_table, watch
from worker.dev.demo.scenario import DemoMessage, build_mix
from worker.dev.devstack import DevStack, answers, ensure_redis, free_port
from worker.infra.brokers import is_amqp
from worker.infra.runtime import Runtime
from worker.lines import login_line
from worker.planning import PlanningError
from worker.producer.enqueue import enqueue

LINE, PASSWORD = "5556661234", "demo"
SEND_CALLS = ("message/send", "messaging/send", "message/get", "message/list", "conversation/get")


@dataclass(frozen=True)
class DemoOptions:
    """What `outbox demo` was asked for."""

    messages: int = 300
    keep: bool = False
    seed: int = 7
    workdir: Path = Path(".outbox/demo")
    timeout_s: float = 300.0
    workers: int = 1


def run_demo(options: DemoOptions, console: Console) -> int:
    """Run the demo; the exit code is 0 only if every message ended as expected."""
    options.workdir.mkdir(parents=True, exist_ok=True)
    for old in options.workdir.glob("outbox.db*"):
        old.unlink()
    stack = DevStack(options.workdir)
    try:
        settings, flower = _start(stack, options, console)
        return _send_and_watch(stack, settings, flower, options, console)
    finally:
        if options.keep:
            _print_how_to_reach(stack, options, console)
        else:
            stack.stop()


def _print_how_to_reach(stack: DevStack, options: DemoOptions, console: Console) -> None:
    """What --keep leaves running, how to send to it, and how to stop it."""
    reach = {
        k: v
        for k, v in stack.env.items()
        if k in ("OUTBOX_DATABASE_URL", "OUTBOX_BROKER_URL", "OUTBOX_REDIS_URL", "ZIPWHIP_BASE_URL")
    }
    console.print(f"--keep: still running (logs in {options.workdir}/). To send to it, export:")
    console.print("  " + " ".join(f"{k}={v}" for k, v in reach.items()), soft_wrap=True)
    groups = " ".join(f"-{p.pid}" for p in stack.processes.values())
    console.print(
        f"Each process has a group of its own; stop them all with: kill -- {groups}", soft_wrap=True
    )


def _start(stack: DevStack, options: DemoOptions, console: Console) -> tuple[Settings, str]:
    console.print(
        "[bold]outbox demo[/bold]: starting Redis check, simulator, worker, beat, web and Flower ..."
    )
    configured = get_settings()
    if is_amqp(configured.broker_url):  # RabbitMQ carries the tasks; Redis keeps limits and locks
        redis_url = ensure_redis(stack, configured.effective_redis_url)
        brokers = {"OUTBOX_BROKER_URL": configured.broker_url, "OUTBOX_REDIS_URL": redis_url}
    else:
        brokers = {"OUTBOX_BROKER_URL": ensure_redis(stack, configured.broker_url)}
    sim_port, web_port = free_port(), free_port()
    flower_port = 5555 if _free(5555) else free_port()
    flower_auth = f"demo:{secrets.token_urlsafe(9)}"
    stack.env = {
        **brokers,
        "OUTBOX_DATABASE_URL": f"sqlite:///{(options.workdir / 'outbox.db').resolve()}",
        "ZIPWHIP_BASE_URL": f"http://127.0.0.1:{sim_port}/",
        "OUTBOX_LINE_RATE": "20",
        "OUTBOX_PROVIDER_READ_TIMEOUT_S": "2",
        "OUTBOX_POLL_DELAYS_S": "[3, 2, 3, 5, 10]",
        "OUTBOX_RETRY_BACKOFF_BASE_S": "1",
        "OUTBOX_RETRY_BACKOFF_MAX_S": "5",
        "OUTBOX_RECONCILE_DELAY_S": "1",
        "OUTBOX_RECONCILE_SETTLE_S": "6",
        "OUTBOX_WEB_PORT": str(web_port),
        "OUTBOX_FLOWER_PORT": str(flower_port),
        "FLOWER_BASIC_AUTH": flower_auth,
        "OUTBOX_BEAT_SCHEDULE_PATH": str(options.workdir / "celerybeat-schedule"),
    }
    settings = settings_from(stack.env)
    simulator = [
        sys.executable,
        "-m",
        "simulator",
        "--port",
        str(sim_port),
        "--quiet",
        "--seed",
        str(options.seed),
    ]
    simulator += [
        "--latency-ms",
        "80",
        "--delivery-ms",
        "3000",
        "--fault-rate",
        "0.05",
        "--slow-answer-s",
        "4",
    ]
    stack.start("simulator", simulator, answers(f"http://127.0.0.1:{sim_port}/_sim/health"))
    _only_retryable_random_faults(sim_port)
    runtime = _runtime(settings)
    for n in range(1, options.workers + 1):
        stack.start(
            f"worker{n}",
            stack.outbox("worker", "--hostname", f"demo{n}@%h"),
            stack.log_contains(f"worker{n}", "ready."),
        )
    stack.start("beat", stack.outbox("beat"), stack.log_contains("beat", "beat: Starting"))
    stack.start("web", stack.outbox("web"), answers(f"http://127.0.0.1:{web_port}/healthz"))
    flower_url = f"http://127.0.0.1:{flower_port}/"
    stack.start("flower", stack.outbox("flower"), answers(flower_url), timeout_s=90)
    login_line(runtime, LINE, None, PASSWORD)
    return settings, f"{flower_url}  (user demo, password {flower_auth.split(':', 1)[1]})"


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _only_retryable_random_faults(port: int) -> None:
    """Random faults are the retryable kinds; the ambiguous ones are scripted, so every outcome is known."""
    mix = {"slow": 0, "drop_after_record": 0, "drop_before_record": 0}
    requests.put(f"http://127.0.0.1:{port}/_sim/faults", json={"mix": mix}, timeout=5).raise_for_status()


def _runtime(settings: Settings) -> Runtime:
    from worker.app import app, configure
    from worker.infra.runtime import get_runtime

    configure(settings)
    runtime = get_runtime()
    runtime.ready()
    app.control.purge()  # tasks left by an earlier demo would name messages of a database now gone
    for key in runtime.redis.scan_iter("outbox:*"):
        runtime.redis.delete(key)
    return runtime


def _send_and_watch(
    stack: DevStack, settings: Settings, flower: str, options: DemoOptions, console: Console
) -> int:
    from worker.infra.runtime import get_runtime

    runtime = get_runtime()
    mix = build_mix(options.messages, options.seed)
    expected, refused = _enqueue_all(runtime, settings, mix)
    console.print(
        f"enqueued {len(expected)} messages ({sum(refused.values())} refused at enqueue); Flower: {flower}"
    )
    finished = watch(runtime.engine, len(expected), options.timeout_s, console)
    with Session(runtime.engine) as session:
        results = outcomes(session, expected)
    console.print(summary_table(results, refused))
    _print_figures(settings, results, console)
    console.print(f"Flower: {flower}\nmetrics: http://127.0.0.1:{settings.web_port}/metrics")
    wrong = {i: o for i, o in results.items() if o.state != o.expected}
    for message_id, o in sorted(wrong.items()):
        console.print(f"[red]message {message_id} ({o.kind}) ended {o.state}, expected {o.expected}[/red]")
    if not finished:
        console.print(f"[red]not every message was final after {options.timeout_s:.0f}s[/red]")
    return 0 if finished and not wrong else 1


def _enqueue_all(
    runtime: Runtime, settings: Settings, mix: list[DemoMessage]
) -> tuple[dict[int, tuple[str, str]], Counter[str]]:
    base = settings.zipwhip_base_url
    for message in mix:
        if message.script:
            requests.post(
                base + "_sim/script", json={"to": message.to, **message.script}, timeout=5
            ).raise_for_status()
    for number in {m.to for m in mix if m.texted_stop}:
        requests.post(base + "_sim/inbound", json={"line": LINE, "from": number, "body": "STOP"}, timeout=5)
    expected: dict[int, tuple[str, str]] = {}
    refused: Counter[str] = Counter()
    for message in mix:
        try:
            message_id = enqueue(runtime, LINE, message.to, message.body, list(message.files))
        except PlanningError:
            refused[message.kind] += 1  # an opted-out recipient is refused at once once we know
            continue
        expected[message_id] = (message.kind, message.expected)
    return expected, refused


def _print_figures(settings: Settings, results: dict[int, Outcome], console: Console) -> None:
    counters = requests.get(settings.zipwhip_base_url + "_sim/counters?sends=0", timeout=5).json()
    calls = sum(counters["calls"].get(name, 0) for name in SEND_CALLS)
    times = sorted(o.seconds_to_final for o in results.values() if o.seconds_to_final is not None)
    console.print(
        f"provider calls per message: {calls / max(1, len(results)):.2f}   "
        f"time to final: p50 {percentile(times, 0.5):.1f}s, p95 {percentile(times, 0.95):.1f}s   "
        f"duplicates at the provider: {counters['duplicates']}"
    )
