"""Prometheus metrics for the web process, cheap to scrape however often and by however many.

Workers run on many hosts and in many processes, so nothing is counted in process memory: events
(send outcomes, provider latency) are counted in Redis by the workers as they happen; queue depths
are read from the broker at scrape time (a few O(1) reads); and the figures that need the database
(messages by state, the oldest waiting text per line) are read by one refresher in the web process
every `metrics_refresh_s` and served from what it read, with the age of that reading exported.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import Engine
from sqlmodel import Session

from worker.infra.brokers import BrokerView
from worker.infra.constants import CONTROL_QUEUE, REDIS_PREFIX, SEND_QUEUE, STATUS_QUEUE
from worker.store.models import utcnow
from worker.store.reading import messages_by_state, oldest_waiting_by_line
from worker.store.states import State

LATENCY_KEY = REDIS_PREFIX + "metrics:provider_latency"
OUTCOMES_KEY = REDIS_PREFIX + "metrics:send_outcomes"  # outcome kind -> messages, since Redis began
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


def count_send_outcomes(redis: Redis, outcomes: Iterable[tuple[str, str]]) -> None:
    """Add a send task's outcomes, (kind, priority) each (sent, retrying, failed, ...; high, normal,
    bulk), to the shared counter in one round trip (a metric never fails the work)."""
    counts = Counter(f"{kind}|{priority}" for kind, priority in outcomes)
    if not counts:
        return
    pipe = redis.pipeline(transaction=False)
    for key, count in counts.items():
        pipe.hincrby(OUTCOMES_KEY, key, count)
    with suppress(RedisError):
        pipe.execute()


@dataclass(frozen=True)
class DatabaseFigures:
    """What the database said at one moment: messages by state, and per line the creation time of
    its oldest text waiting to go (an age is computed from it at scrape time)."""

    by_state: dict[str, int]
    oldest_waiting: dict[str, datetime]
    read_at: float = field(default_factory=time.monotonic)


def read_database_figures(engine: Engine) -> DatabaseFigures:
    """Two grouped queries; run by the refresher, never by a scrape."""
    with Session(engine) as session:
        return DatabaseFigures(messages_by_state(session), oldest_waiting_by_line(session))


class OutboxCollector(Collector):
    """Collects every outbox metric on each scrape, without touching the database."""

    def __init__(
        self,
        redis: Redis,
        broker: BrokerView,
        figures: Callable[[], DatabaseFigures | None],
        started_at: float,
    ) -> None:
        self._redis = redis
        self._broker = broker
        self._figures = figures
        self._started_at = started_at

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        figures = self._figures()
        yield self._age(figures)
        if figures is not None:
            yield self._messages_by_state(figures)
            yield self._oldest_waiting(figures, utcnow())
        pipe = self._redis.pipeline(transaction=False)  # one round trip for both counters
        pipe.hgetall(OUTCOMES_KEY)
        pipe.hgetall(LATENCY_KEY)
        outcomes, latency = pipe.execute()
        yield self._sends_by_outcome(outcomes)
        yield self._latency(latency)
        yield self._queue_depth()

    def _age(self, figures: DatabaseFigures | None) -> GaugeMetricFamily:
        read_at = figures.read_at if figures is not None else self._started_at
        return GaugeMetricFamily(
            "outbox_metrics_age_seconds",
            "Seconds since the database figures (messages, oldest queued) were read; since start if never.",
            value=time.monotonic() - read_at,
        )

    def _messages_by_state(self, figures: DatabaseFigures) -> GaugeMetricFamily:
        family = GaugeMetricFamily("outbox_messages", "Messages by state.", labels=["state"])
        for state in [s.value for s in State] + sorted(set(figures.by_state) - {s.value for s in State}):
            family.add_metric([state], figures.by_state.get(state, 0))
        return family

    def _oldest_waiting(self, figures: DatabaseFigures, now: datetime) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "outbox_oldest_queued_age_seconds",
            "Age of the oldest message waiting to go, per line.",
            labels=["line"],
        )
        for phone, oldest in figures.oldest_waiting.items():
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=now.tzinfo)
            family.add_metric([phone], (now - oldest).total_seconds())
        return family

    def _sends_by_outcome(self, raw: dict[bytes, bytes]) -> CounterMetricFamily:
        family = CounterMetricFamily(
            "outbox_send_outcomes",
            "What send tasks did with each message, by outcome and priority.",
            labels=["outcome", "priority"],
        )
        for key, count in sorted(raw.items()):
            kind, _, priority = _text(key).partition("|")
            family.add_metric([kind, priority or "normal"], float(count))
        return family

    def _queue_depth(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "outbox_queue_depth", "Tasks waiting in each broker queue.", labels=["queue"]
        )
        for queue, length in self._broker.queue_lengths([SEND_QUEUE, STATUS_QUEUE, CONTROL_QUEUE]).items():
            family.add_metric([queue], length)
        return family

    def _latency(self, raw_counts: dict[bytes, bytes]) -> HistogramMetricFamily:
        raw = {_text(k): float(v) for k, v in raw_counts.items()}
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
