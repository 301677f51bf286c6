"""The Celery configuration: made for this job, and every task lands in exactly one queue."""

from __future__ import annotations

import redis
from kombu import Connection, Message, Queue

from config.celery import RELEASE_EVERY_S, celery_config
from config.settings import settings_from
from tests.support.services import REDIS_HOST, REDIS_PORT, redis_url
from worker.app import app, configure
from worker.infra.broker import LANE_BACKLOG, LANE_NORMAL, queue_lengths
from worker.infra.brokers import consumed_queues, send_route
from worker.infra.constants import (
    CONTROL_QUEUE,
    SEND_QUEUE,
    STATUS_QUEUE,
    TASK_POLL_LINE,
    TASK_RECONCILE,
    TASK_RELEASE,
    TASK_SEND,
    TASK_SWEEP,
)


def test_the_settings_made_for_this_job() -> None:
    settings = settings_from({})
    conf = celery_config(settings)
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["accept_content"] == ["json"] and conf["task_serializer"] == "json"
    assert conf["task_ignore_result"] and conf["result_backend"] is None
    assert conf["task_time_limit"] == settings.task_time_limit_s < settings.claim_timeout_s
    # The only countdowns are rate-limit slots within the release period: far below the visibility timeout.
    assert conf["broker_transport_options"]["visibility_timeout"] >= 100 * RELEASE_EVERY_S


def test_each_task_lands_in_exactly_one_queue(redis_db: int) -> None:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db)
    client.flushdb()
    configure(settings_from({"OUTBOX_BROKER_URL": redis_url(redis_db)}))
    expected = {
        TASK_SEND: SEND_QUEUE,
        TASK_POLL_LINE: STATUS_QUEUE,
        TASK_RECONCILE: STATUS_QUEUE,
        TASK_RELEASE: CONTROL_QUEUE,
        TASK_SWEEP: CONTROL_QUEUE,
    }
    try:
        for task in expected:
            app.send_task(task, args=[1])
        lengths = queue_lengths(client, [SEND_QUEUE, STATUS_QUEUE, CONTROL_QUEUE])
        assert lengths == {SEND_QUEUE: 1, STATUS_QUEUE: 2, CONTROL_QUEUE: 2}
        client.flushdb()  # Redis restarted empty: publishing still reaches the queue
        app.send_task(TASK_SEND, args=[2])
        assert client.llen(SEND_QUEUE) == 1
    finally:
        client.flushdb()


def test_a_worker_on_redis_takes_control_jobs_first_then_sends_and_reconciliations_before_a_flood_of_polls(
    redis_db: int,
) -> None:
    """kombu reads every queue's priority step 0 before any queue's step 3: status tasks published
    without a priority once went ahead of every normal send (a thousand lines' polls held the task
    threads while due sends waited 20 s). A real kombu consumer on the worker's queues says the order."""
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db)
    client.flushdb()
    url = redis_url(redis_db)
    configure(settings_from({"OUTBOX_BROKER_URL": url}))
    try:
        for line in range(20):
            app.send_task(TASK_POLL_LINE, args=[[line]])
        app.send_task(TASK_RECONCILE, args=[[7]])
        app.send_task(TASK_SEND, args=[[1]], **send_route(url, LANE_NORMAL))
        app.send_task(TASK_SEND, args=[[2]], **send_route(url, LANE_BACKLOG))
        app.send_task(TASK_RELEASE)
        taken: list[str] = []

        def take(body: list[object], message: Message) -> None:
            task = message.headers["task"]
            taken.append(f"{task} (backlog)" if body[0] == [[2]] else task)
            message.ack()

        with Connection(url) as connection:
            queues = [Queue(name, routing_key=name) for name in consumed_queues(url)]
            with connection.Consumer(queues, callbacks=[take], prefetch_count=1):
                while len(taken) < 24:
                    connection.drain_events(timeout=5)
        # The release job; then normal sends and reconciliations take turns; then polls take turns with
        # a backlog's sends (twenty polls do not hold it back).
        assert taken[0] == TASK_RELEASE
        assert sorted(taken[1:3]) == sorted([TASK_SEND, TASK_RECONCILE]), taken
        assert f"{TASK_SEND} (backlog)" in taken[3:5], taken
    finally:
        client.flushdb()
