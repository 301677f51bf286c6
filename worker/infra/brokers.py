"""The broker, whichever it is: Redis (kombu's Redis transport) or RabbitMQ (AMQP, quorum queues).

Everything that depends on which broker carries the tasks is here: the Celery options each needs,
the queues a worker consumes, how a send task's urgency travels, and a small view of what the
broker holds (queue depths, the ids of send tasks it holds, whether it answers).

Urgency. On Redis, kombu emulates priorities with sibling lists read in order (steps 0, 3, 6, 9), one
queue `send`. RabbitMQ's quorum queues (3.10 and 3.11, 3.12 too) support no priorities, and classic
queues, which do, are neither replicated nor safe from a node's loss. So on RabbitMQ each lane is a
quorum queue of its own: `send.urgent`, `send.normal`, `send.backlog`, `send.bulk`, all consumed by
every worker. RabbitMQ hands a consumer's free prefetch slots to its queues in turn, not in priority
order; but it never makes an urgent task wait behind a lane's backlog: it waits for one task of each
other lane at most, where on Redis it waits for none. The release job keeps the send lanes short in
both cases (about two seconds of the workers' work), so the difference is a few task runs.

What the broker holds. On Redis we read kombu's lists and its unacked hash (`worker.infra.broker`). On
RabbitMQ a queue's depth comes from a passive queue declaration (its ready messages), and nothing is
read of what a worker holds: see `AmqpBroker.send_ids`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol
from urllib.parse import urlsplit

from kombu import Connection, Exchange, Queue

from worker.infra import broker as redis_broker
from worker.infra.constants import CALLBACK_QUEUE, CONTROL_QUEUE, SEND_QUEUE, STATUS_QUEUE
from worker.infra.redis_client import kombu_broker, redis_client

AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
EXCHANGE = "outbox"  # one durable direct exchange; each queue bound by its own name
QUORUM = {"x-queue-type": "quorum"}
# A send's lane on RabbitMQ, by its Redis priority step (worker.infra.broker.LANE_*).
LANE_QUEUES = {
    redis_broker.LANE_URGENT: f"{SEND_QUEUE}.urgent",
    redis_broker.LANE_NORMAL: f"{SEND_QUEUE}.normal",
    redis_broker.LANE_BACKLOG: f"{SEND_QUEUE}.backlog",
    redis_broker.LANE_BULK: f"{SEND_QUEUE}.bulk",
}

log = logging.getLogger(__name__)


def is_amqp(url: str) -> bool:
    """Whether the broker URL names RabbitMQ (AMQP) rather than Redis."""
    return urlsplit(url).scheme.lower() in AMQP_SCHEMES


def send_queues(url: str) -> list[str]:
    """The queues send tasks wait in: one on Redis (priorities inside it), a lane each on RabbitMQ."""
    return list(LANE_QUEUES.values()) if is_amqp(url) else [SEND_QUEUE]


def consumed_queues(url: str) -> list[str]:
    """Every queue a worker takes tasks from (its `-Q`)."""
    return [*send_queues(url), STATUS_QUEUE, CONTROL_QUEUE, CALLBACK_QUEUE]


def send_route(url: str, lane: int | None) -> dict[str, Any]:
    """How a send task of this lane is published: a priority on Redis, a lane queue on RabbitMQ."""
    if not is_amqp(url):
        return {"priority": lane}
    queue = LANE_QUEUES.get(lane if lane is not None else redis_broker.LANE_NORMAL, LANE_QUEUES[3])
    return {"queue": queue, "routing_key": queue}


def task_route(url: str, queue: str, lane: int) -> dict[str, Any]:
    """How a task other than a send is published (Celery's `task_routes`): its queue, and on Redis
    its lane among the sends (RabbitMQ's quorum queues have no priorities)."""
    route: dict[str, Any] = {"queue": queue, "routing_key": queue}
    if not is_amqp(url):
        route["priority"] = lane
    return route


def default_send_queue(url: str) -> str:
    """Where a send task goes unless its lane says otherwise (and tasks no route names)."""
    return LANE_QUEUES[redis_broker.LANE_NORMAL] if is_amqp(url) else SEND_QUEUE


def celery_options(url: str, visibility_timeout_s: float, heartbeat_s: float = 10.0) -> dict[str, Any]:
    """The Celery settings that differ between the brokers: queues, routes and transport options."""
    if not is_amqp(url):
        return {
            # Publishing keeps working after Redis restarts empty (the chaos tests).
            "task_queues": tuple(Queue(name, routing_key=name) for name in consumed_queues(url)),
            "task_default_queue": SEND_QUEUE,
            "broker_transport_options": {
                "visibility_timeout": visibility_timeout_s,
                **kombu_broker(url)[1],  # a broker behind Sentinels: the primary's name
            },
            # Celery's own defaults, stated so that a process switched from RabbitMQ (tests) drops them.
            "task_default_exchange": None,
            "task_default_queue_type": "classic",
        }
    exchange = Exchange(EXCHANGE, "direct", durable=True)
    return {
        # Durable quorum queues: replicated on a cluster, kept on disk, and a task a worker took but
        # did not acknowledge goes back to its queue as soon as that worker's connection closes.
        "task_queues": tuple(
            Queue(name, exchange, routing_key=name, durable=True, queue_arguments=QUORUM)
            for name in consumed_queues(url)
        ),
        "task_default_queue": default_send_queue(url),
        "task_default_exchange": EXCHANGE,
        "task_default_queue_type": "quorum",  # a queue Celery creates on demand is a quorum queue too
        # A publish returns once RabbitMQ has the task (written to a majority of the queue's replicas).
        "broker_transport_options": {"confirm_publish": True},
        # A worker's connection heartbeat (the lower of this and the server's, 60 s by default, wins).
        # A worker cut off from the broker sends none: RabbitMQ closes its connection after about two
        # missed intervals and puts the tasks it held unacknowledged back in their queues, and the
        # worker, hearing nothing either, drops the connection and reconnects. Celery's default,
        # 120 s, left that to the server's 60 s: a minute or two. Publishers (web, beat, producers)
        # open connections without a heartbeat, as Celery does; a publish to a dead one fails.
        "broker_heartbeat": heartbeat_s,
        # Quorum queues refuse a channel-wide (global) prefetch: the worker sets it per consumer.
        "worker_detect_quorum_queues": True,
        # Celery's native delayed delivery needs topic exchanges and whole seconds; our countdowns are
        # a rate slot's fraction of a second and wait in the worker, as on Redis. The delay queues it
        # declares at a worker's start anyway are made classic: cheap, and never used.
        "broker_native_delayed_delivery_queue_type": "classic",
    }


class _DirectExchangeNotice(logging.Filter):
    """Drops Celery's warning, logged at every publish with a countdown, that a direct exchange
    cannot use native delayed delivery: ours are direct on purpose (see `celery_options`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        return "native delayed delivery" not in text or "direct exchange" not in text.lower()


_filter = _DirectExchangeNotice()


def quiet_delayed_delivery_notices() -> None:
    """Install the filter on the two loggers that say it (idempotent)."""
    for name in ("celery.app.base", "kombu.transport.native_delayed_delivery"):
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)


class BrokerView(Protocol):
    """What the application reads of the broker."""

    def queue_lengths(self, queues: list[str]) -> dict[str, int]:
        """Tasks waiting in each queue (a send queue name stands for all its lanes)."""
        ...

    def send_ids(self, handed_within_s: float) -> set[int] | None:
        """The ids of every text whose send task the broker holds, or None: nothing may be concluded."""
        ...

    def ping(self) -> bool:
        """Whether the broker answers."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class RedisBroker:
    """kombu's Redis transport, read directly (`worker.infra.broker`)."""

    def __init__(self, url: str, socket_timeout_s: float = 5) -> None:
        self.redis = redis_client(url, socket_timeout_s)

    def queue_lengths(self, queues: list[str]) -> dict[str, int]:
        return redis_broker.queue_lengths(self.redis, queues)

    def send_ids(self, handed_within_s: float) -> set[int] | None:
        return redis_broker.message_ids_in(self.redis, SEND_QUEUE, handed_within_s)

    def ping(self) -> bool:
        return bool(self.redis.ping())

    def close(self) -> None:
        self.redis.close()


class AmqpBroker:
    """RabbitMQ through kombu: queue depths by passive declaration, on one connection kept open."""

    def __init__(self, url: str, timeout_s: float = 5) -> None:
        self._url = url
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._connection: Connection | None = None

    def queue_lengths(self, queues: list[str]) -> dict[str, int]:
        with self._lock:
            try:
                return {queue: sum(self._ready(lane) for lane in self._lanes(queue)) for queue in queues}
            except Exception:
                self._drop()  # the next call connects afresh
                raise

    def send_ids(self, handed_within_s: float) -> set[int] | None:
        """None: on RabbitMQ the queue is the authority and nothing needs to be found lost. The Redis
        check looks for send tasks that vanished: Redis restarted empty, or a worker died between
        taking a task and noting it, leaving it in kombu's unacked hash for an hour. On RabbitMQ a
        task is in a durable quorum queue once its publish is confirmed (a restart keeps it), and a
        task a worker took but never acknowledged goes back to its queue as soon as that worker's
        connection closes (killed, or cut off: then at the missed heartbeats). Reading the queue
        would mean taking every message from it, which is not a read. A publish that failed is
        logged and its text comes back with its lease, as on Redis."""
        return None

    def ping(self) -> bool:
        with self._lock:
            try:
                self._connected().connection  # noqa: B018 - connects if it must
                return True
            except Exception:
                self._drop()
                return False

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _lanes(self, queue: str) -> list[str]:
        return list(LANE_QUEUES.values()) if queue == SEND_QUEUE else [queue]

    def _ready(self, queue: str) -> int:
        """The messages ready in a queue (not those a worker holds); 0 for a queue not declared yet.
        A passive declaration of a missing queue closes its channel, so each has a channel of its own."""
        channel = self._connected().channel()
        try:
            _, count, _ = channel.queue_declare(queue=queue, passive=True)
            return int(count)
        except Exception as error:
            if getattr(error, "code", None) == 404:  # no worker has declared it yet
                return 0
            raise
        finally:
            try:
                channel.close()
            except Exception:
                log.debug("closing a broker channel failed", exc_info=True)

    def _connected(self) -> Connection:
        if self._connection is None:
            connection = Connection(self._url, connect_timeout=self._timeout_s)
            connection.ensure_connection(max_retries=1)
            self._connection = connection
        return self._connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.release()
            except Exception:
                log.debug("closing the broker connection failed", exc_info=True)


def broker_view(url: str) -> BrokerView:
    """The view of the broker at this URL."""
    return AmqpBroker(url) if is_amqp(url) else RedisBroker(url)
