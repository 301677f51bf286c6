"""The pipeline end to end on RabbitMQ: real worker and beat processes on a vhost of the test run's
own (quorum queues), rate limits and locks in Redis, the simulator over HTTP, PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tasks import send_message, send_messages
from tests.e2e.conftest import DEMO_LINE, Deployment, deploy, fresh_recipient
from tests.support.rabbitmq import rabbitmqctl, vhost_of
from tests.support.simulator import SimulatorHandle, run_simulator
from tests.support.stack import wait_for
from worker.infra.brokers import LANE_QUEUES

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorHandle]:
    with run_simulator("--latency-ms", "20", "--delivery-ms", "300") as handle:
        yield handle


@pytest.fixture(scope="module")
def deployment(
    amqp_env: dict[str, str], simulator: SimulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("rabbitmq")
    broker = amqp_env["OUTBOX_BROKER_URL"]
    with deploy("postgres", broker, simulator, workdir, amqp_env, web=True) as running:
        yield running


def test_texts_go_through_durable_quorum_queues(deployment: Deployment) -> None:
    recipients = [fresh_recipient() for _ in range(20)]
    ids = [send_message(DEMO_LINE, to, f"Your order {n} shipped") for n, to in enumerate(recipients)]
    assert {deployment.wait_final(i)["state"] for i in ids} == {"delivered"}
    assert all([s["count"] for s in deployment.sends_to(to)] == [1] for to in recipients)
    vhost = vhost_of(deployment.stack.env["OUTBOX_BROKER_URL"])
    listed = rabbitmqctl(
        "list_queues", "-p", vhost, "name", "type", "durable", "--quiet", "--no-table-headers"
    )
    queues = {
        name: (kind, durable) for name, kind, durable in (line.split("\t") for line in listed.splitlines())
    }
    for name in [*LANE_QUEUES.values(), "status", "control", "callbacks"]:
        assert queues[name] == ("quorum", "true"), queues


def test_an_urgent_text_overtakes_a_blast_on_its_line(deployment: Deployment) -> None:
    deployment.set_rate(10.0)
    try:
        blast = send_messages(
            {"line": DEMO_LINE, "to": fresh_recipient(), "body": f"Our autumn sale, {n}"} for n in range(300)
        )
        wait_for(lambda: deployment.accepted(blast) >= 20, 60, 0.1, "the blast to be under way")
        to = fresh_recipient()
        started = time.monotonic()
        send_message(DEMO_LINE, to, "Your code is 4711", priority="high")
        wait_for(lambda: deployment.sends_to(to), 30, 0.05, "the urgent text to reach the provider")
        waited = time.monotonic() - started
        behind = len(blast) - deployment.accepted(blast)
        print(f"\nRabbitMQ, urgent behind a blast at 10/s: sent after {waited:.2f} s, {behind} queued")
        assert behind > 150  # it did not wait for the blast
    finally:
        deployment.set_rate(0.0)  # let the rest of the blast go before the next test
        wait_for(lambda: deployment.accepted(blast) == len(blast), 120, 0.5, "the blast to end")
        deployment.set_rate(None)


def test_metrics_read_the_queue_depths_and_health_from_rabbitmq(deployment: Deployment) -> None:
    import requests

    deployment.wait_final(send_message(DEMO_LINE, fresh_recipient(), "Now"))
    text = requests.get(f"{deployment.web_url}/metrics", timeout=10).text
    health = requests.get(f"{deployment.web_url}/healthz", timeout=10)
    assert health.status_code == 200 and health.json() == {"database": True, "broker": True}
    for queue in ("send", "status", "control"):
        assert f'outbox_queue_depth{{queue="{queue}"}}' in text
