"""What the broker holds, read from Redis the way kombu's Redis transport keeps it: a list per
queue (and sibling lists per priority), and the messages handed to workers but not yet
acknowledged in one hash, until they are."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from redis import Redis

from worker.store.states import Priority

PRIORITY_SEPARATOR = "\x06\x16"  # kombu keeps priorities 3, 6 and 9 in sibling lists
# kombu's Redis transport reads priority 0 first (its steps are 0, 3, 6, 9). The lanes: urgent texts;
# normal texts of a line without a backlog (a line's lone text is never stuck behind another line's
# blast); normal texts of a line working through a backlog; bulk texts.
LANE_URGENT, LANE_NORMAL, LANE_BACKLOG, LANE_BULK = 0, 3, 6, 9
UNACKED_KEY = "unacked"  # kombu's default `unacked_key`: delivery tag -> [message, exchange, routing key]
UNACKED_INDEX_KEY = "unacked_index"  # kombu's default `unacked_index_key`: delivery tag -> when handed out


def queue_length(broker: Redis, queue: str) -> int:
    """Tasks waiting in a queue, every priority."""
    return queue_lengths(broker, [queue])[queue]


def queue_lengths(broker: Redis, queues: list[str]) -> dict[str, int]:
    """Tasks waiting in each queue, every priority, in one round trip."""
    pipe = broker.pipeline(transaction=False)
    for queue in queues:
        for key in queue_keys(queue):
            pipe.llen(key)
    lengths = pipe.execute()
    return {queue: sum(lengths[4 * n : 4 * n + 4]) for n, queue in enumerate(queues)}


def message_ids_in(broker: Redis, queue: str, handed_within_s: float) -> set[int] | None:
    """The message ids of every task for the queue the broker holds: waiting in it (every priority),
    or handed to a worker within the last `handed_within_s` and not yet acknowledged (one handed out
    earlier is in a worker's own notes by now, or its worker died before it could note it: kombu keeps
    it until the visibility timeout, an hour). None when something there is not what we expect: then
    nothing may be concluded lost."""
    pipe = broker.pipeline(transaction=False)
    for key in queue_keys(queue):
        pipe.lrange(key, 0, -1)
    pipe.zrangebyscore(UNACKED_INDEX_KEY, time.time() - handed_within_s, "+inf")
    *lists, recent = pipe.execute()
    waiting = [raw for found in lists for raw in found]
    try:
        raws = broker.hmget(UNACKED_KEY, recent) if recent else []
        handed = [json.loads(raw) for raw in raws if raw is not None]  # [message, exchange, routing key]
        messages = [json.loads(raw) for raw in waiting] + [m for m, _, key in handed if key == queue]
        return {i for message in messages for i in _task_ids(message)}
    except (ValueError, TypeError, KeyError, IndexError):
        return None


def queue_keys(queue: str) -> list[str]:
    """The lists kombu keeps a queue in: its own, then one per priority step after 0."""
    return [queue] + [f"{queue}{PRIORITY_SEPARATOR}{p}" for p in (3, 6, 9)]


def _task_ids(message: dict[str, Any]) -> list[int]:
    """The ids a task message carries (Celery's protocol 2: the body is [args, kwargs, embed])."""
    body = message["body"]
    if message.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    args = json.loads(body)[0]
    first = args[0] if args else []
    return [first] if isinstance(first, int) else [int(i) for i in first]


def send_priority(priority: Priority, backlog: bool = False) -> int:
    """The broker priority (lane) of a send task carrying a text of this priority, from a line with or
    without a backlog of texts of its kind waiting."""
    if priority is Priority.HIGH:
        return LANE_URGENT
    if priority is Priority.BULK:
        return LANE_BULK
    return LANE_BACKLOG if backlog else LANE_NORMAL
