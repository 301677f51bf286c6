"""The Celery configuration, made for this job: nothing lost, nothing doubled, ids only."""

from __future__ import annotations

from typing import Any

from config.settings import Settings
from worker.infra.broker import LANE_BACKLOG, LANE_NORMAL, LANE_URGENT
from worker.infra.brokers import celery_options, default_send_queue, task_route
from worker.infra.constants import (
    CALLBACK_QUEUE,
    CONTROL_QUEUE,
    STATUS_QUEUE,
    TASK_CALLBACK,
    TASK_CALLBACK_SWEEP,
    TASK_INBOUND,
    TASK_NOTIFY,
    TASK_POLL_LINE,
    TASK_RECONCILE,
    TASK_RELEASE,
    TASK_SEND,
    TASK_SWEEP,
)
from worker.infra.redis_client import kombu_broker

# The release job moves due work from the database to the queues; it runs often and must not pile up.
RELEASE_EVERY_S = 1.0
CALLBACK_SWEEP_EVERY_S = 15.0  # status callbacks whose task was lost are published again

# Every task but the send: its queue, and on Redis its lane among the sends. kombu's worker reads every
# queue's step 0, then every queue's step 3, and so on (it takes turns between queues only within a
# step): a task published without a priority goes ahead of every normal send. A thousand lines' polls
# once held every task thread (a task polls 8 lines, seconds at the provider's latency) while the
# sends that were due waited in the broker for 20 s. The control jobs are tiny and drive everything:
# step 0. Reconciliations, the application's hooks and status callbacks take turns with normal sends,
# ahead of a backlog's and bulk sends: a text in doubt is looked up before a blast goes on (behind it,
# a saturated provider's texts in doubt waited for all of it). Polls wait for the normal sends and
# take turns with a backlog's: a status learnt a second later costs nothing, a send that misses its
# slot does (and a poll run while sends wait makes the sending take longer on a busy host).
OTHER_TASKS = (
    (TASK_RELEASE, CONTROL_QUEUE, LANE_URGENT),
    (TASK_SWEEP, CONTROL_QUEUE, LANE_URGENT),
    (TASK_CALLBACK_SWEEP, CONTROL_QUEUE, LANE_URGENT),
    (TASK_RECONCILE, STATUS_QUEUE, LANE_NORMAL),
    (TASK_NOTIFY, STATUS_QUEUE, LANE_NORMAL),
    (TASK_INBOUND, STATUS_QUEUE, LANE_NORMAL),
    (TASK_CALLBACK, CALLBACK_QUEUE, LANE_NORMAL),
    (TASK_POLL_LINE, STATUS_QUEUE, LANE_BACKLOG),
)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings derived from ours."""
    broker_url = kombu_broker(settings.broker_url)[0]  # Sentinels: their options come with the queues
    send_queue = default_send_queue(settings.broker_url)
    return {
        "broker_url": broker_url,
        "broker_connection_retry_on_startup": True,
        # Late acks + reject on worker loss: a task whose worker dies runs again, and the database
        # claim makes the second run harmless.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,  # the database is the result
        "result_backend": None,
        "task_time_limit": settings.task_time_limit_s,
        "task_soft_time_limit": settings.task_time_limit_s * 0.8,
        # One direct exchange, each queue bound by its own name: a task goes to exactly one queue. The
        # queues, the transport options (Redis: the visibility timeout; waits live in the database, the
        # only countdowns are rate-limit slots under a second or two) and what RabbitMQ's quorum
        # queues need come from `worker.infra.brokers`.
        **celery_options(
            settings.broker_url, settings.broker_visibility_timeout_s, settings.broker_heartbeat_s
        ),
        "task_routes": {
            TASK_SEND: {"queue": send_queue, "routing_key": send_queue},  # each send names its lane
            **{task: task_route(settings.broker_url, queue, lane) for task, queue, lane in OTHER_TASKS},
        },
        # Flower follows tasks through the workers' events (received, started, succeeded). A "sent"
        # event from every publisher would double the cost of publishing a task for little: a task
        # shows in Flower once a worker has it, a moment later.
        "worker_send_task_events": True,
        "task_send_sent_event": False,
        "task_track_started": True,
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            "release-due-work": {
                "task": TASK_RELEASE,
                "schedule": RELEASE_EVERY_S,
                "options": {"expires": RELEASE_EVERY_S * 5},
            },
            "sweep": {
                "task": TASK_SWEEP,
                "schedule": settings.sweeper_interval_s,
                "options": {"expires": settings.sweeper_interval_s * 2},
            },
            "callback-sweep": {
                "task": TASK_CALLBACK_SWEEP,
                "schedule": CALLBACK_SWEEP_EVERY_S,
                "options": {"expires": CALLBACK_SWEEP_EVERY_S * 2},
            },
        },
    }
