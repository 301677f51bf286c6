"""Chaos: real processes, real faults. Every scenario prints its figures and asserts that nothing
is lost (every message final) and nothing is doubled (each text reached the provider once)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable

import pytest
import redis
import requests
from sqlalchemy import bindparam, create_engine, text
from sqlmodel import Session, col, select

from tests.chaos.conftest import DEFAULT_TIMINGS, Chaos
from tests.e2e.conftest import DEMO_LINE, DEMO_PASSWORD
from tests.support.rabbitmq import close_connections, restart_broker
from tests.support.services import POSTGRES_ADMIN_URL
from worker.inbound.webhooks import hook_token, register_webhooks
from worker.store.models import Part, StatusEvent
from worker.store.states import FINAL_STATES

pytestmark = pytest.mark.e2e


def assert_nothing_lost_or_doubled(figures: dict[str, object], expect_delivered: bool = True) -> None:
    assert figures["lost"] == 0, figures
    assert figures["duplicated"] == 0, figures
    if expect_delivered:
        assert figures["states"] == {"delivered": figures["messages"]}, figures


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_a_worker_killed_with_sigkill_mid_run_loses_and_doubles_nothing(
    chaos: Callable[..., Chaos], broker: str
) -> None:
    run = chaos(broker=broker)
    run.enqueue(200, "kill -9")
    run.wait_until(lambda: run.final_count() >= 40, 60)
    run.stack.kill("worker1", signal.SIGKILL)  # the worker and its threads, mid-send
    run.stack.start_worker("worker2", concurrency=16)
    figures = run.settle(
        f"worker killed (kill -9), {broker}", "1 worker SIGKILLed mid-run, a fresh one started"
    )
    assert_nothing_lost_or_doubled(figures)


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_a_killed_workers_texts_are_final_within_30_s_with_default_timeouts(
    chaos: Callable[..., Chaos], broker: str
) -> None:
    """The dispatcher's recovery as deployed: default leases, claim timeout and visibility timeout
    (all minutes long); the worker's alive key is what brings its texts back (on RabbitMQ, its
    unacknowledged tasks are back in their queues as soon as its connection closes, too)."""
    run = chaos(env={**DEFAULT_TIMINGS, "OUTBOX_LINE_RATE": "0"}, broker=broker, workers=0)
    run.enqueue(400, "kill -9, defaults")  # all waiting before the worker starts: enqueueing takes a while
    run.stack.start_worker("worker1", concurrency=16)
    run.wait_until(lambda: _sent(run) >= 100, 60, interval_s=0.02)  # it sends a hundred or two a second
    at_provider = _sent(run)
    run.stack.kill("worker1", signal.SIGKILL)
    killed = time.monotonic()
    assert 100 <= at_provider <= 300, (
        f"the kill came with {400 - at_provider} of 400 texts unsent (want >= 100)"
    )
    run.stack.start_worker("worker2", concurrency=16)
    run.wait_until(lambda: run.final_count() >= len(run.ids), 120)
    took = time.monotonic() - killed
    figures = run.settle(
        f"worker killed, default timeouts, {broker}",
        f"1 worker SIGKILLed with {at_provider} of 400 at the provider; all final {took:.1f} s later",
    )
    assert_nothing_lost_or_doubled(figures)
    assert took <= 30, f"all final {took:.1f} s after the kill"


def _sent(run: Chaos) -> int:
    return sum(1 for s in run.simulator.counters()["sends"] if s["body"].startswith("kill -9, defaults"))


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_a_prefork_child_killed_mid_send_loses_and_doubles_nothing(
    chaos: Callable[..., Chaos], broker: str
) -> None:
    run = chaos(pool="prefork", broker=broker)
    run.enqueue(80, "child")
    killed = 0
    for _ in range(2):
        target = 10 + 20 * killed
        run.wait_until(lambda target=target: run.final_count() >= target, 60)
        children = _children(run.stack.processes["worker1"].pid)
        if children:
            os.kill(children[0], signal.SIGKILL)
            killed += 1
    figures = run.settle(f"prefork child killed, {broker}", f"{killed} pool children SIGKILLed mid-run")
    assert killed == 2
    assert_nothing_lost_or_doubled(figures)


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def test_redis_flushed_mid_run_loses_and_doubles_nothing(
    chaos: Callable[..., Chaos], broker_url: str
) -> None:
    run = chaos()
    run.enqueue(200, "flush")
    run.wait_until(lambda: run.final_count() >= 40, 60)
    redis.Redis.from_url(broker_url).flushdb()  # every queued task, lock and rate key gone at once
    figures = run.settle("broker lost (Redis flushed)", "Redis FLUSHDB with ~160 messages in flight")
    assert_nothing_lost_or_doubled(figures)


def test_rabbitmq_restarted_mid_run_loses_and_doubles_nothing(chaos: Callable[..., Chaos]) -> None:
    """Every connection to the vhost cut (workers, beat and producer mid-publish), then the broker
    stopped and started: tasks in the durable quorum queues survive, the ones workers held unacked
    come back, and every process reconnects. Each text reaches the provider exactly once."""
    run = chaos(broker="amqp", workers=2)
    run.enqueue(200, "rabbitmq restart")
    run.wait_until(lambda: run.final_count() >= 40, 60)
    cut = close_connections(run.broker_url)
    run.enqueue(20, "rabbitmq restart")  # the producer's connection was cut too
    down_s = restart_broker(run.broker_url)
    run.enqueue(20, "rabbitmq restart")
    faults = f"{cut} connections to the vhost closed, then RabbitMQ stopped and started ({down_s:.1f} s down)"
    figures = run.settle("broker restarted (RabbitMQ)", faults)
    assert_nothing_lost_or_doubled(figures)
    sends = [s for s in run.simulator.counters()["sends"] if s["body"].startswith("rabbitmq restart")]
    assert len(sends) == len(run.ids) and {s["count"] for s in sends} == {1}, sends[:3]


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_provider_faults_of_every_kind_end_correctly_without_a_second_send(
    chaos: Callable[..., Chaos], broker: str
) -> None:
    run = chaos(simulator_args=("--fault-rate", "0.2"), broker=broker)
    run.enqueue(200, "faults")
    figures = run.settle(
        f"provider faults (~20%), {broker}", "20% of sends: -855, -1, 500, 429, slow, dropped before/after"
    )
    calls = run.simulator.counters()["calls"]
    assert calls["message/send"] > 220  # the faults really happened, and were retried
    assert_nothing_lost_or_doubled(figures)


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_a_database_outage_of_a_few_seconds_loses_nothing(chaos: Callable[..., Chaos], broker: str) -> None:
    run = chaos(broker=broker)
    run.enqueue(150, "db outage")
    run.wait_until(lambda: run.final_count() >= 20, 60)
    name = run.database_url.rsplit("/", 1)[1]
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        for _ in range(8):  # drop every connection, again and again, for about 4 s
            connection.execute(
                text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
            )
            time.sleep(0.5)
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    admin.dispose()
    run.runtime.engine.dispose()  # the test's own pool lost its connections too
    figures = run.settle(
        f"database hiccup, {broker}", "PostgreSQL refused and dropped every connection for ~4 s"
    )
    assert_nothing_lost_or_doubled(figures)


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_bad_provider_answers_are_classified_and_the_worker_keeps_serving(
    chaos: Callable[..., Chaos], broker: str
) -> None:
    bad = ("html_200", "empty_200", "truncated_200", "missing_tokens", "numeric_ids")
    run = chaos(simulator_args=("--fault-rate", "0.3"), broker=broker)
    run.simulator.set_faults(
        mix={kind: (1 if kind in bad else 0) for kind in run.simulator.set_faults()["mix"]}
    )
    run.enqueue(100, "bad answers")
    figures = run.settle(
        f"bad provider answers, {broker}",
        "30% of sends answered HTML, empty, truncated, tokenless or numeric",
    )
    assert_nothing_lost_or_doubled(figures)
    assert "Traceback" not in run.stack.log("worker1").split("ready.", 1)[1]


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_poison_messages_stop_after_bounded_attempts_with_their_reason(
    chaos: Callable[..., Chaos], broker: str
) -> None:
    run = chaos(env={"OUTBOX_SEND_MAX_ATTEMPTS": "4"}, broker=broker)
    poisons = run.enqueue(2, "poison")
    run.simulator.script("+12065551000", outcomes=["http:500"] * 50)  # retryable, forever
    run.simulator.script("+12065551001", outcomes=["drop_before_record"] * 50)  # ambiguous, never there
    run.enqueue(10, "healthy")
    figures = run.settle(
        f"poison messages, {broker}", "one recipient answered 500 forever, another dropped every send"
    )
    assert figures["lost"] == 0 and figures["duplicated"] == 0
    assert figures["states"] == {"failed": 2, "delivered": 10}
    with run.runtime.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT attempts, error_description FROM part WHERE message_id IN :ids ORDER BY message_id"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": poisons},
        ).all()
    assert [r[0] for r in rows] == [4, 4]
    assert (
        "gave up after 4 attempts" in rows[0][1]
        and "not accepted by the provider after 4 attempts" in rows[1][1]
    )


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_sigterm_lets_in_flight_sends_finish_and_loses_nothing(
    chaos: Callable[..., Chaos], broker: str
) -> None:
    run = chaos(broker=broker)
    run.enqueue(150, "sigterm")
    run.wait_until(lambda: run.final_count() >= 30, 60)
    worker = run.stack.processes["worker1"]
    started = time.monotonic()
    run.stack.kill("worker1", signal.SIGTERM)  # warm shutdown: finish what runs, hand back the rest
    assert worker.returncode == 0 and time.monotonic() - started < 30
    run.stack.start_worker("worker2", concurrency=16)
    figures = run.settle(f"graceful shutdown, {broker}", "SIGTERM to the worker mid-run, a fresh one started")
    assert_nothing_lost_or_doubled(figures)
    assert "Traceback" not in run.stack.log("worker1")


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_forged_replayed_and_out_of_order_webhooks_never_move_a_status(
    chaos: Callable[..., Chaos], broker: str
) -> None:
    secret = "chaos-webhook-key"
    env = {"OUTBOX_WEBHOOK_SECRET_KEY": secret, "OUTBOX_POLL_DELAYS_S": "[3]"}
    run = chaos(web=True, env=env, broker=broker)
    web_url = f"http://127.0.0.1:{run.stack.env['OUTBOX_WEB_PORT']}"
    admin = run.runtime.client.login(f"admin@{DEMO_LINE}", DEMO_PASSWORD)
    register_webhooks(run.runtime, admin, "+1" + DEMO_LINE, web_url)
    hook = f"{web_url}/hooks/1{DEMO_LINE}/{hook_token(secret, '+1' + DEMO_LINE)}/message/progress"
    forged = hook.replace(hook_token(secret, "+1" + DEMO_LINE), hook_token("guessed", "+1" + DEMO_LINE))
    run.enqueue(150, "webhook abuse")
    answers: Counter[str] = Counter()
    http = requests.Session()
    deadline = time.monotonic() + 120
    while run.final_count() < len(run.ids) and time.monotonic() < deadline:
        for provider_id in _provider_ids(run):
            # A forger claims failure; a replayer sends stale and repeated progress, in any order.
            answers[
                f"forged {http.post(forged, json=_progress(provider_id, 5, 1106), timeout=5).status_code}"
            ] += 1
            for status, detail in random.sample([(1, 999), (2, 1001), (4, 1003), (3, 1002)], 4):
                code = http.post(hook, json=_progress(provider_id, status, detail), timeout=5).status_code
                answers[f"replayed {code}"] += 1
    faults = f"{answers['forged 404']} forged 'failed' calls refused, {answers['replayed 200']} stale replays"
    figures = run.settle(f"webhook abuse, {broker}", faults)
    assert_nothing_lost_or_doubled(figures)
    assert answers["forged 404"] > 0 and set(answers) == {"forged 404", "replayed 200"}, answers
    assert _events_after_final(run) == []


def _progress(provider_id: int, status_code: int, message_status: int) -> dict[str, object]:
    return {"id": provider_id, "statusCode": status_code, "messageStatus": message_status}


def _provider_ids(run: Chaos) -> list[int]:
    with Session(run.runtime.engine) as session:
        found = session.exec(select(Part.provider_id).where(col(Part.provider_id).is_not(None))).all()
    return [int(p) for p in found if p]


def _events_after_final(run: Chaos) -> list[str]:
    """History entries recorded for a part after it had already reached a final state."""
    finals = {s.value for s in FINAL_STATES}
    with Session(run.runtime.engine) as session:
        events = session.exec(select(StatusEvent).order_by(col(StatusEvent.id))).all()
    final_parts: set[int | None] = set()
    late = []
    for event in events:
        if event.part_id in final_parts:
            late.append(f"message {event.message_id}: {event.state} by {event.source} ({event.description})")
        if event.state in finals:
            final_parts.add(event.part_id)
    return late
