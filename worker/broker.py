"""What the broker holds, read from Redis the way kombu's Redis transport keeps it: a list per
queue (and sibling lists per priority), and the messages handed to workers but not yet
acknowledged in one hash, until they are."""

from __future__ import annotations

import json

from redis import Redis

PRIORITY_SEPARATOR = "\x06\x16"  # kombu keeps priorities 3, 6 and 9 in sibling lists
UNACKED_KEY = "unacked"  # kombu's default `unacked_key`


def queue_length(broker: Redis, queue: str) -> int:
    """Tasks waiting in a queue, every priority."""
    return queue_lengths(broker, [queue])[queue]


def queue_lengths(broker: Redis, queues: list[str]) -> dict[str, int]:
    """Tasks waiting in each queue, every priority, in one round trip."""
    pipe = broker.pipeline(transaction=False)
    for queue in queues:
        for key in [queue] + [f"{queue}{PRIORITY_SEPARATOR}{p}" for p in (3, 6, 9)]:
            pipe.llen(key)
    lengths = pipe.execute()
    return {queue: sum(lengths[4 * n : 4 * n + 4]) for n, queue in enumerate(queues)}


def holds_tasks_for(broker: Redis, queue: str) -> bool:
    """True when a task for the queue is waiting in it or is in a worker's hands."""
    if queue_length(broker, queue):
        return True
    for raw in broker.hvals(UNACKED_KEY):  # [message, exchange, routing key] each
        try:
            if json.loads(raw)[2] == queue:
                return True
        except (ValueError, IndexError, TypeError):
            return True  # not what we expect: do not conclude the broker lost anything
    return False
