"""Which broker the bench measures: Redis (a database number of the bench's own, as before), or the
RabbitMQ named by `outbox bench --broker amqp://...` with Redis beside it for rate limits and locks.

Either must be empty at the start (the bench's workers must not take a real deployment's tasks), and
what is there at the end is the bench's own, so it is emptied.
"""

from __future__ import annotations

import contextlib
from urllib.parse import urlsplit, urlunsplit

from worker.dev.devstack import DevStack, StackError, ensure_redis
from worker.infra.brokers import AmqpBroker, consumed_queues, is_amqp
from worker.infra.redis_client import redis_client

DEFAULT_REDIS = "redis://localhost:6379/0"


def bench_env(stack: DevStack, configured_redis: str, db: int, broker: str | None) -> dict[str, str]:
    """The broker settings of the bench's processes: Redis for everything, or RabbitMQ plus Redis."""
    redis_url = empty_redis(stack, configured_redis if not is_amqp(configured_redis) else DEFAULT_REDIS, db)
    if broker is None:
        return {"OUTBOX_BROKER_URL": redis_url}
    if not is_amqp(broker):
        raise StackError(
            f"--broker takes a RabbitMQ URL (amqp://user:password@host:5672/vhost), not {broker!r}"
        )
    view = AmqpBroker(broker)
    try:
        waiting = view.queue_lengths(consumed_queues(broker))
    except Exception as error:
        raise StackError(f"RabbitMQ does not answer at {_safe(broker)}: {error}") from None
    finally:
        view.close()
    if any(waiting.values()):
        raise StackError(
            f"the outbox queues at {_safe(broker)} hold tasks {waiting}: give the bench a vhost of its own"
        )
    return {"OUTBOX_BROKER_URL": broker, "OUTBOX_REDIS_URL": redis_url}


def broker_label(env: dict[str, str]) -> str:
    return "RabbitMQ" if is_amqp(env.get("OUTBOX_BROKER_URL", "")) else "Redis"


def empty_after(env: dict[str, str]) -> None:
    """Empty what the bench used: its Redis database, and its RabbitMQ queues."""
    broker = env.get("OUTBOX_BROKER_URL")
    redis_url = env.get("OUTBOX_REDIS_URL") or broker
    if redis_url:
        redis_client(redis_url).flushdb()
    if broker and is_amqp(broker):
        from kombu import Connection

        with Connection(broker, connect_timeout=5) as connection:
            for queue in consumed_queues(broker):
                channel = connection.channel()
                try:
                    channel.queue_purge(queue)
                except Exception:  # a queue never declared: nothing in it
                    pass
                finally:
                    with contextlib.suppress(Exception):
                        channel.close()


def empty_redis(stack: DevStack, configured: str, db: int) -> str:
    """The configured Redis, on a database number of the bench's own that must be empty: the bench's
    workers must not take a real deployment's tasks, nor leave theirs behind."""
    parts = urlsplit(configured)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))
    url = ensure_redis(stack, url)
    if redis_client(url).dbsize():
        raise StackError(
            f"Redis database {db} at {parts.netloc} is not empty: pass --redis-db N of an empty one"
        )
    return url


def _safe(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"
