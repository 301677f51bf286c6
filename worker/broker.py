"""What the broker holds, read from Redis the way kombu's Redis transport keeps it: a list per
queue (and sibling lists per priority), and the messages handed to workers but not yet
acknowledged in one hash, until they are."""

from __future__ import annotations

import json

from redis import Redis

from worker.store.states import Priority

PRIORITY_SEPARATOR = "\x06\x16"  # kombu keeps priorities 3, 6 and 9 in sibling lists
# kombu's Redis transport reads priority 0 first (its steps are 0, 3, 6, 9): an urgent send is taken
# before the normal ones already waiting, a bulk one after them.
REDIS_PRIORITY = {Priority.HIGH: 0, Priority.NORMAL: 3, Priority.BULK: 6}
UNACKED_KEY = "unacked"  # kombu's default `unacked_key`


def queue_length(broker: Redis, queue: str) -> int:
    """Tasks waiting in a queue, every priority."""
    pipe = broker.pipeline(transaction=False)
    for key in [queue] + [f"{queue}{PRIORITY_SEPARATOR}{p}" for p in (3, 6, 9)]:
        pipe.llen(key)
    return sum(pipe.execute())


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


def send_priority(priority: Priority) -> int:
    """The broker priority of a send task carrying a text of this priority."""
    return REDIS_PRIORITY[priority]
