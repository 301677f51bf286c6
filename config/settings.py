"""The one settings object. Nothing else in the project reads the environment."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the outbox, validated at start; units are in the names."""

    model_config = SettingsConfigDict(env_prefix="OUTBOX_", env_file=".env", extra="ignore")

    # Where things are.
    broker_url: str = Field(
        "redis://localhost:6379/0", description="Celery broker: Redis (redis://) or RabbitMQ (amqp://)."
    )
    redis_url: str | None = Field(
        None,
        description="Redis for rate limits and locks; defaults to the broker URL (needed with RabbitMQ).",
    )
    database_url: str = Field(
        "sqlite:///outbox.db", description="SQLAlchemy URL: SQLite file by default, PostgreSQL in production."
    )
    zipwhip_base_url: str = Field(
        "https://api.zipwhip.com/",
        validation_alias=AliasChoices("ZIPWHIP_BASE_URL", "OUTBOX_ZIPWHIP_BASE_URL"),
        description="Base URL of the Zipwhip REST API (the demo points it at the simulator).",
    )

    # Provider HTTP.
    provider_connect_timeout_s: float = Field(3.05, description="TCP connect timeout for provider calls.")
    provider_read_timeout_s: float = Field(10.0, description="Read timeout; past it a send is ambiguous.")
    provider_pool_size: int = Field(
        64, description="Provider calls in flight per worker process (threads and keep-alive connections)."
    )

    # Numbers.
    default_region: str = Field("US", description="Region used to read numbers written without +country.")
    allowed_country_codes: list[int] = Field(
        default_factory=lambda: [1], description="Country calling codes a line may text (Zipwhip: +1)."
    )

    # Provider limits (from the seed; every one is a setting).
    body_max_bytes: int = Field(600, description="Largest text body of an SMS or MMS, in UTF-8 bytes.")
    mms_max_attachments: int = Field(2, description="Most files in one MMS.")
    mms_payload_max_bytes: int = Field(
        600_000, description="Largest MMS payload (body + files); 600 KB read as the smaller 600,000."
    )
    shrink_images: bool = Field(False, description="Shrink JPEG/PNG images with Pillow to fit an MMS.")
    image_max_bytes: int = Field(
        20_000_000, ge=1, description="Largest JPEG/PNG file read to be shrunk (with shrink_images)."
    )
    image_max_pixels: int = Field(
        24_000_000,
        ge=1,
        description="Most pixels of an image decoded to be shrunk, read from its header before decoding.",
    )

    # Sending and retrying.
    send_max_attempts: int = Field(6, description="Provider attempts per part before it ends failed.")
    retry_backoff_base_s: float = Field(2.0, description="First retry delay; doubles each attempt.")
    retry_backoff_max_s: float = Field(300.0, description="Longest retry delay (kept far below visibility).")
    max_releases_per_part: int = Field(
        50, description="A part published this often without an outcome ends failed (a poison message)."
    )
    message_max_parts: int = Field(10, description="Most provider messages one request may become.")
    claim_timeout_s: float = Field(
        180.0, description="A part claimed longer than this (above the task time limit) is reconciled."
    )
    send_batch_size: int = Field(
        32, ge=1, le=500, description="Most texts one send task carries (sent concurrently by its worker)."
    )
    send_batch_window_s: float = Field(
        0.2, ge=0, description="Most a text may go after its rate-limit slot to share a send task."
    )
    send_queue_min_depth: int = Field(
        500, ge=1, description="Texts the release job keeps queued at least (more when workers take more)."
    )
    line_rate_per_s: float = Field(
        1.0,
        validation_alias=AliasChoices("OUTBOX_LINE_RATE", "OUTBOX_LINE_RATE_PER_S"),
        description="Messages per second per line across all hosts; 0 means unlimited.",
    )

    dispatch_at_commit: bool = Field(
        True,
        description="The producer hands a text its line can send right away to a worker at commit "
        "(needs Redis and the broker; without them the release job sends it within a second).",
    )

    mms_send_cost: float = Field(
        1.0, gt=0, description="Rate slots an MMS part takes on its line (carriers often allow fewer MMS)."
    )

    # Delivery tracking.
    poll_delays_s: list[float] = Field(
        default_factory=lambda: [5.0, 10.0, 20.0, 40.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0],
        description="Waits between status polls; the last repeats until the horizon.",
    )
    poll_page_size: int = Field(
        100, ge=1, le=1000, description="Messages per message/list page when polling a line's statuses."
    )
    poll_horizon_s: float = Field(72 * 3600, description="After this long without a final status: unknown.")
    reconcile_delay_s: float = Field(5.0, description="Wait after an ambiguous send before looking for it.")
    reconcile_settle_s: float = Field(
        15.0,
        description="An ambiguous send not found at the provider this long after its attempt is sent "
        "again (above the read timeout: any request the provider got has landed by then).",
    )
    reconcile_window_s: float = Field(
        60.0, description="How far before an ambiguous attempt message/list is searched (clock skew)."
    )

    # Queue hygiene.
    broker_visibility_timeout_s: float = Field(3600.0, description="Redis visibility timeout.")
    sweeper_interval_s: float = Field(10.0, description="How often beat runs the sweeper.")
    release_lease_s: float = Field(
        120.0, description="Published work whose task never ran is released again after this long."
    )
    task_time_limit_s: float = Field(120.0, description="Hard time limit of one task.")
    worker_liveness_ttl_s: float = Field(
        10.0,
        gt=1,
        description="A worker's alive key lasts this long (refreshed every fifth of it); gone a while "
        "longer, the worker is declared dead and its texts are reconciled at once.",
    )

    # Hooks and web.
    outcome_hook: str | None = Field(
        None, description="Called on a final state with (message_id, state): 'module:func' or a task name."
    )
    inbound_hook: str | None = Field(
        None, description="Called with the stored id of each text received: 'module:func' or a task name."
    )
    webhook_secret_key: str | None = Field(
        None, description="Key the per-line webhook URL secrets are derived from; unset: webhooks off."
    )
    webhook_allowed_sources: list[str] = Field(
        default_factory=list, description="Networks (CIDR) webhook calls may come from; empty: any."
    )
    push_contacts: bool = Field(False, description="`outbox sync` also saves every recipient as a contact.")
    worker_concurrency: int = Field(
        8, description="Task threads per worker process: they claim and record; the provider pool sends."
    )
    web_host: str = Field("127.0.0.1", description="Bind address of the web process (webhooks, metrics).")
    web_port: int = Field(8000, description="Port of the web process.")
    web_trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Proxies (addresses or CIDR) whose X-Forwarded-For web believes; empty: none.",
    )
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token /metrics asks for; unset: /metrics is open to whoever reaches it."
    )
    metrics_refresh_s: float = Field(
        15.0, gt=0, description="How often the web process reads the database figures /metrics serves."
    )
    api_requests_per_s: float = Field(
        20.0, gt=0, description="Requests a second one HTTP API key may make (429 with Retry-After past it)."
    )
    api_max_request_bytes: int = Field(
        10_000_000,
        ge=1024,
        description="Largest HTTP API request body (413 past it): a full MMS in base64 fits the default.",
    )
    callback_timeout_s: float = Field(5.0, gt=0, description="Connect and read timeout of a status callback.")
    callback_retry_for_s: float = Field(
        3600.0, gt=0, description="How long a status callback answered with an error is retried (backoff)."
    )
    callback_private_networks: list[str] = Field(
        default_factory=list,
        description="Private or loopback networks (CIDR) status callbacks may reach; empty: public only.",
    )
    log_level: str = Field("INFO", description="Log level of every process.")
    beat_schedule_path: str = Field(
        ".outbox/celerybeat-schedule", description="Where beat keeps its schedule."
    )
    flower_basic_auth: str | None = Field(
        None,
        validation_alias=AliasChoices("FLOWER_BASIC_AUTH", "OUTBOX_FLOWER_BASIC_AUTH"),
        description="user:password for Flower; Flower refuses to start without it.",
    )
    flower_host: str = Field("127.0.0.1", description="Bind address of Flower.")
    flower_port: int = Field(5555, description="Port of Flower.")
    flower_max_tasks: int = Field(10_000, description="Tasks Flower keeps in memory (bounded history).")

    @field_validator("poll_delays_s")
    @classmethod
    def _poll_delays_not_empty(cls, value: list[float]) -> list[float]:
        if not value or any(d <= 0 for d in value):
            raise ValueError("poll_delays_s needs at least one positive delay")
        return value

    @field_validator("web_trusted_proxies", "webhook_allowed_sources", "callback_private_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not an address or a network (CIDR)") from None
        return value

    @model_validator(mode="after")
    def _redis_beside_rabbitmq(self) -> Settings:
        if self.redis_url is None and urlsplit(self.broker_url).scheme.lower() in ("amqp", "amqps", "pyamqp"):
            raise ValueError(
                "the broker is RabbitMQ: set OUTBOX_REDIS_URL too (rate limits and locks live in Redis)"
            )
        return self

    @property
    def effective_redis_url(self) -> str:
        """Redis for our own keys: the explicit setting, else the broker."""
        return self.redis_url or self.broker_url


def settings_from(env: Mapping[str, str]) -> Settings:
    """Settings read from the given variables (over the real environment), as a child process
    started with them would read them."""
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
