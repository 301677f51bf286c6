"""The broker abstraction: the Celery options each broker needs, how a send's lane travels, and what
is read of RabbitMQ (a vhost of the test run's own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from config.celery import celery_config
from config.settings import settings_from
from tests.support.rabbitmq import purge
from worker.app import app, configure
from worker.infra.broker import LANE_BULK, LANE_NORMAL, LANE_URGENT
from worker.infra.brokers import (
    LANE_QUEUES,
    AmqpBroker,
    RedisBroker,
    broker_view,
    consumed_queues,
    is_amqp,
    send_route,
)
from worker.infra.constants import TASK_POLL_LINE, TASK_SEND
from worker.infra.runtime import get_runtime
from worker.pipeline.dispatch import Outbox


def test_rabbitmq_gets_durable_quorum_queues_confirms_and_per_consumer_prefetch() -> None:
    amqp = "amqp://guest:guest@127.0.0.1:5672/outbox"
    config = celery_config(settings_from({"OUTBOX_BROKER_URL": amqp, "OUTBOX_REDIS_URL": "redis://x/1"}))
    queues = {q.name: q for q in config["task_queues"]}
    assert set(queues) == {*LANE_QUEUES.values(), "status", "control", "callbacks"}
    assert all(q.durable and q.queue_arguments == {"x-queue-type": "quorum"} for q in queues.values())
    assert config["broker_transport_options"] == {"confirm_publish": True}
    assert config["worker_detect_quorum_queues"] is True and config["task_acks_late"] is True
    assert config["task_routes"][TASK_SEND]["queue"] == "send.normal"
    redis = celery_config(settings_from({"OUTBOX_BROKER_URL": "redis://127.0.0.1:6379/1"}))
    assert [q.name for q in redis["task_queues"]] == ["send", "status", "control", "callbacks"]
    assert "visibility_timeout" in redis["broker_transport_options"]


def test_a_sends_lane_is_a_priority_on_redis_and_a_queue_on_rabbitmq() -> None:
    assert send_route("redis://h/0", LANE_URGENT) == {"priority": LANE_URGENT}
    amqp = "amqp://h/v"
    assert send_route(amqp, LANE_URGENT) == {"queue": "send.urgent", "routing_key": "send.urgent"}
    assert send_route(amqp, LANE_BULK)["queue"] == "send.bulk"
    assert send_route(amqp, None)["queue"] == LANE_QUEUES[LANE_NORMAL]
    assert is_amqp("amqps://h/v") and not is_amqp("redis://h/0")
    assert consumed_queues("redis://h/0") == ["send", "status", "control", "callbacks"]
    assert isinstance(broker_view("redis://h/0"), RedisBroker) and isinstance(broker_view(amqp), AmqpBroker)


@pytest.fixture
def on_rabbitmq(amqp_env: dict[str, str], broker_url: str, tmp_path: Path) -> Iterator[str]:
    url = amqp_env["OUTBOX_BROKER_URL"]
    configure(settings_from({**amqp_env, "OUTBOX_DATABASE_URL": f"sqlite:///{tmp_path}/o.db"}))
    with app.connection_for_write() as connection:  # as a worker does at its start
        for queue in app.amqp.queues.values():
            queue.bind(connection.default_channel).declare()
    purge(url)
    yield url
    purge(url)
    configure(
        settings_from({"OUTBOX_BROKER_URL": broker_url, "OUTBOX_DATABASE_URL": f"sqlite:///{tmp_path}/o.db"})
    )


def test_each_lane_lands_in_its_own_queue_and_depths_are_read_from_rabbitmq(on_rabbitmq: str) -> None:
    outbox = Outbox()
    outbox.add(TASK_SEND, [1, 2], 0.5, LANE_URGENT)  # with a rate slot's countdown
    outbox.add(TASK_SEND, [3], 0.0, LANE_BULK)
    outbox.add(TASK_SEND, [4], 0.0, LANE_BULK)
    outbox.add(TASK_POLL_LINE, [1])
    assert outbox.publish() == 4
    view = get_runtime().broker
    assert view.queue_lengths(["send.urgent", "send.bulk", "send.normal", "status"]) == {
        "send.urgent": 1,
        "send.bulk": 2,
        "send.normal": 0,
        "status": 1,
    }
    assert view.queue_lengths(["send", "control", "no-such-queue"]) == {
        "send": 3,
        "control": 0,
        "no-such-queue": 0,
    }
    assert view.send_ids(5.0) is None  # the queue is the authority: nothing is concluded lost
    assert view.ping()
    assert not AmqpBroker("amqp://guest:guest@127.0.0.1:1/none", timeout_s=1).ping()
