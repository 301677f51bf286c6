"""Per-process resources (database engine, Redis, provider client), built once per process.

Connection pools must not cross a fork, so the runtime remembers the pid it was built in and is
rebuilt in a forked child; within a process every thread shares it.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

from redis import Redis
from sqlalchemy import Engine

from config.settings import Settings, get_settings
from worker.infra.brokers import BrokerView, broker_view
from worker.infra.primary_fence import primary_fence
from worker.infra.ratelimit import LineRateLimiter
from worker.infra.redis_client import redis_client
from worker.pipeline.retry import RetryPolicy
from worker.planning import Limits
from worker.store.db import make_engine, migrate
from worker.store.schedule import PollPolicy
from worker.zipwhip.client import ClientConfig, ZipwhipClient


@dataclass
class Runtime:
    """What a task or the producer needs to do its work."""

    settings: Settings
    pid: int = field(default_factory=os.getpid)
    schema_ready: bool = field(default=False, repr=False)

    def ready(self) -> Runtime:
        """This runtime, with the database schema brought up to date first (once per process)."""
        if not self.schema_ready:
            with _lock:
                if not self.schema_ready:
                    migrate(self.engine)
                    self.schema_ready = True
        return self

    @cached_property
    def engine(self) -> Engine:
        """The database engine, with a connection for each task thread and a few to spare."""
        return make_engine(self.settings.database_url, pool_size=max(8, self.settings.worker_concurrency + 4))

    @cached_property
    def redis(self) -> Redis:
        """Redis for rate limits and locks (not the broker connection)."""
        return redis_client(self.settings.effective_redis_url)

    @cached_property
    def broker(self) -> BrokerView:
        """What the broker holds (the release job's check for lost sends), Redis or RabbitMQ."""
        return broker_view(self.settings.broker_url)

    @cached_property
    def limiter(self) -> LineRateLimiter:
        """The per-line send rate shared by all hosts."""
        return LineRateLimiter(self.redis, primary_fence(self.settings.effective_redis_url))

    @cached_property
    def client(self) -> ZipwhipClient:
        """The provider client with its keep-alive pool."""
        s = self.settings
        return ZipwhipClient(
            ClientConfig(
                base_url=s.zipwhip_base_url,
                connect_timeout_s=s.provider_connect_timeout_s,
                read_timeout_s=s.provider_read_timeout_s,
                pool_size=s.provider_pool_size,
            )
        )

    @cached_property
    def provider_pool(self) -> ThreadPoolExecutor:
        """Threads that make a send task's provider calls concurrently (one per keep-alive connection)."""
        return ThreadPoolExecutor(self.settings.provider_pool_size, thread_name_prefix="provider")

    @cached_property
    def retry_policy(self) -> RetryPolicy:
        """How often and how patiently a refused send is tried again."""
        s = self.settings
        return RetryPolicy(s.send_max_attempts, s.retry_backoff_base_s, s.retry_backoff_max_s)

    @cached_property
    def polls(self) -> PollPolicy:
        """How patiently sent parts are polled."""
        return PollPolicy(tuple(self.settings.poll_delays_s), self.settings.poll_horizon_s)

    @cached_property
    def limits(self) -> Limits:
        """The provider's limits for message planning."""
        s = self.settings
        return Limits(
            body_max_bytes=s.body_max_bytes,
            mms_max_attachments=s.mms_max_attachments,
            mms_payload_max_bytes=s.mms_payload_max_bytes,
            shrink_images=s.shrink_images,
            image_max_bytes=s.image_max_bytes,
            image_max_pixels=s.image_max_pixels,
            max_parts=s.message_max_parts,
            default_region=s.default_region,
            allowed_country_codes=tuple(s.allowed_country_codes),
        )

    def close(self) -> None:
        """Release pools (used by tests and at process exit)."""
        pool = self.__dict__.pop("provider_pool", None)
        if pool is not None:
            pool.shutdown(wait=False)
        for name in ("engine", "redis", "broker", "client"):
            resource = self.__dict__.pop(name, None)
            if resource is None:
                continue
            closer = getattr(resource, "dispose", None) or resource.close
            closer()


_lock = threading.Lock()
_current: Runtime | None = None


def get_runtime() -> Runtime:
    """The runtime of this process, built on first use (and again after a fork)."""
    global _current
    runtime = _current
    if runtime is not None and runtime.pid == os.getpid():
        return runtime
    with _lock:
        if _current is None or _current.pid != os.getpid():
            _current = Runtime(get_settings())
        return _current


def reset_runtime(settings: Settings | None = None) -> Runtime:
    """Drop the current runtime and build a fresh one (tests, or after settings change)."""
    global _current
    with _lock:
        if _current is not None and _current.pid == os.getpid():
            _current.close()
        _current = Runtime(settings or get_settings())
        return _current
