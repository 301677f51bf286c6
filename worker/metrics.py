"""Prometheus metrics for the web process, read from the shared state at scrape time.

Workers run on many hosts and in many processes, so nothing is counted in process memory: message
states come from the database, queue depths from the broker, and provider latency from a small
histogram that every worker adds to in Redis.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func
from sqlmodel import Session, col, select

from worker.broker import queue_length
from worker.constants import CONTROL_QUEUE, REDIS_PREFIX, SEND_QUEUE, STATUS_QUEUE
from worker.runtime import Runtime
from worker.store.models import Line, Message, StatusEvent, utcnow
from worker.store.states import WAITING_STATES, Source

LATENCY_KEY = REDIS_PREFIX + "metrics:provider_latency"
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def observe_provider_latencies(redis: Redis, durations_s: list[float]) -> None:
    """Add provider calls' durations to the shared histogram in one round trip (a metric never
    fails the work)."""
    if not durations_s:
        return
    buckets = Counter(next((str(b) for b in LATENCY_BUCKETS_S if s <= b), "+Inf") for s in durations_s)
    pipe = redis.pipeline(transaction=False)
    for bucket, count in buckets.items():
        pipe.hincrby(LATENCY_KEY, bucket, count)
    pipe.hincrbyfloat(LATENCY_KEY, "sum", sum(durations_s))
    with suppress(RedisError):
        pipe.execute()


class OutboxCollector(Collector):
    """Collects every outbox metric on each scrape."""

    def __init__(self, runtime: Runtime, broker: Redis) -> None:
        self._runtime = runtime
        self._broker = broker

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        with Session(self._runtime.engine) as session:
            yield self._messages_by_state(session)
            yield self._sends_by_outcome(session)
            yield self._oldest_queued(session, utcnow())
        yield self._queue_depth()
        yield self._latency()

    def _messages_by_state(self, session: Session) -> GaugeMetricFamily:
        family = GaugeMetricFamily("outbox_messages", "Messages by state.", labels=["state"])
        rows = session.exec(select(Message.state, func.count()).group_by(Message.state)).all()
        for state, count in rows:
            family.add_metric([state], count)
        return family

    def _sends_by_outcome(self, session: Session) -> CounterMetricFamily:
        family = CounterMetricFamily(
            "outbox_send_outcomes", "Provider send outcomes by state.", labels=["outcome"]
        )
        rows = session.exec(
            select(StatusEvent.state, func.count())
            .where(StatusEvent.source == Source.SEND.value, StatusEvent.state != "sending")
            .group_by(StatusEvent.state)
        ).all()
        for state, count in rows:
            family.add_metric([state], count)
        return family

    def _oldest_queued(self, session: Session, now: datetime) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "outbox_oldest_queued_age_seconds",
            "Age of the oldest message waiting to go, per line.",
            labels=["line"],
        )
        rows = session.exec(
            select(Line.phone, func.min(Message.created_at))
            .join(Line, col(Line.id) == Message.line_id)
            .where(col(Message.state).in_([s.value for s in WAITING_STATES]))
            .group_by(Line.phone)
        ).all()
        for phone, oldest in rows:
            if oldest is not None:
                oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=now.tzinfo)
                family.add_metric([phone], (now - oldest).total_seconds())
        return family

    def _queue_depth(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "outbox_queue_depth", "Tasks waiting in each broker queue.", labels=["queue"]
        )
        for queue in (SEND_QUEUE, STATUS_QUEUE, CONTROL_QUEUE):
            family.add_metric([queue], queue_length(self._broker, queue))
        return family

    def _latency(self) -> HistogramMetricFamily:
        raw = {_text(k): float(v) for k, v in self._runtime.redis.hgetall(LATENCY_KEY).items()}
        running, buckets = 0.0, []
        for bound in (*(str(b) for b in LATENCY_BUCKETS_S), "+Inf"):
            running += raw.get(bound, 0.0)
            buckets.append((bound, running))
        return HistogramMetricFamily(
            "outbox_provider_latency_seconds",
            "Duration of provider send calls.",
            buckets=buckets,
            sum_value=raw.get("sum", 0.0),
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
