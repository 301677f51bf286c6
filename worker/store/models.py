"""The tables. Times are aware UTC datetimes; provider ids are strings (they exceed 2^53)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from worker.store.columns import StoredEnum
from worker.store.states import IN_FLIGHT_SQL, LineState, Priority, State


def utcnow() -> datetime:
    """Now, as the aware UTC datetime every table stores."""
    return datetime.now(UTC)


class Line(SQLModel, table=True):
    """A texting line: its number, who logs in for it, and whether it can send now."""

    id: int | None = Field(default=None, primary_key=True)
    phone: str = Field(unique=True, index=True, description="E.164")
    username: str
    session_key: str | None = Field(default=None, repr=False, description="a credential: never logged")
    state: LineState = Field(default=LineState.NEEDS_LOGIN, sa_type=StoredEnum(LineState))
    rate_per_s: float | None = Field(default=None, description="overrides the line rate setting")
    webhook_secret: str | None = Field(default=None, repr=False)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


PLAIN_ROW = "_outbox_plain_row"  # in an instance's __dict__: read by `worker.store.locked_rows`
TOUCHED = "_outbox_touched"  # ... and set since its changes were last written


class _Writable(SQLModel):
    """A table whose rows `worker.store.locked_rows` reads as plain copies outside any session: setting
    one of their attributes is a dictionary store (SQLModel's own does the ORM's change tracking and
    pydantic's bookkeeping, a fifth of a send's CPU, for rows whose changes are found by comparison)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get(PLAIN_ROW):
            self.__dict__[name] = value
            self.__dict__[TOUCHED] = True
        else:
            super().__setattr__(name, value)


class Message(_Writable, table=True):
    """One request to text a recipient; sent as one or more parts."""

    __table_args__ = (
        UniqueConstraint("line_id", "idempotency_key", name="uq_message_line_idempotency"),
        # Messages still in flight, by line and recipient: the one-recipient order check probes it
        # per candidate, and its size follows what is in flight, never the history.
        Index(
            "ix_message_in_flight",
            "line_id",
            "recipient",
            "id",
            postgresql_where=text(IN_FLIGHT_SQL),
            sqlite_where=text(IN_FLIGHT_SQL),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    line_id: int = Field(foreign_key="line.id")
    recipient: str = Field(description="E.164")
    state: State = Field(default=State.QUEUED, sa_type=StoredEnum(State))
    priority: Priority = Field(
        default=Priority.NORMAL, sa_type=StoredEnum(Priority), description="0 high, 1 normal, 2 bulk"
    )
    idempotency_key: str | None = None
    request_digest: str | None = Field(
        default=None, description="sha256 of what was asked, with a key: a reused key must ask the same"
    )
    send_at: datetime | None = None
    expires_at: datetime | None = None
    meta: dict[str, Any] | None = Field(default=None, sa_column=Column("meta", JSON))
    api_key_id: int | None = Field(default=None, description="the HTTP API key that sent it, if one did")
    callback_url: str | None = Field(default=None, description="where its state changes are POSTed")
    callback_events: str | None = Field(default=None, description="all or final")
    error_code: int | None = None
    error_description: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    final_at: datetime | None = None


class Part(_Writable, table=True):
    """One provider message (SMS or MMS) of a message, with its sending and delivery state."""

    __table_args__ = (
        UniqueConstraint("message_id", "position", name="uq_part_message_position"),
        Index("ix_part_state_due", "state", "due_at"),
        Index("ix_part_line_state_due", "line_id", "state", "priority", "due_at", "id"),
        Index("ix_part_state_poll", "state", "next_poll_at"),
        Index("ix_part_provider_id", "provider_id"),
        Index("ix_part_dispatched", "dispatched_at"),
        Index("ix_part_line_sent", "line_id", "sent_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", index=True)
    line_id: int = Field(foreign_key="line.id")
    position: int
    kind: str = Field(description="sms or mms")
    body: str
    body_bytes: int
    payload_bytes: int
    state: State = Field(default=State.QUEUED, sa_type=StoredEnum(State))
    priority: Priority = Field(
        default=Priority.NORMAL,
        sa_type=StoredEnum(Priority),
        description="its message's, for the line's queue order",
    )
    attempts: int = 0
    releases: int = Field(default=0, description="send tasks published for it; bounds a poison message")
    due_at: datetime | None = Field(
        default=None, description="when the release job next looks at it; None: waits for its line to log in"
    )
    dispatched_at: datetime | None = Field(
        default=None, description="set when a send task was published for it; a claim needs it"
    )
    claimed_at: datetime | None = None
    claim_token: str | None = Field(default=None, description="the task delivery that claimed it")
    claimed_by: str | None = Field(default=None, description="the worker that claimed it (its liveness key)")
    provider_id: str | None = None
    fingerprint: str | None = None
    status_code: int | None = None
    message_status: int | None = None
    sent_at: datetime | None = None
    final_at: datetime | None = None
    next_poll_at: datetime | None = None
    poll_count: int = 0
    unknown_since: datetime | None = None
    error_kind: str | None = None
    error_code: int | None = None
    error_description: str | None = None


class Attachment(SQLModel, table=True):
    """A file of an MMS part, kept in the database so that any worker host can send it."""

    id: int | None = Field(default=None, primary_key=True)
    part_id: int = Field(foreign_key="part.id", index=True)
    position: int
    filename: str
    content_type: str
    size: int
    from_body: bool = False
    data: bytes = Field(sa_column=Column("data", LargeBinary, nullable=False), repr=False)


class StatusEvent(SQLModel, table=True):
    """One change in a message's history, with who saw it and the provider's raw code."""

    __tablename__ = "status_event"

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", index=True)
    part_id: int | None = Field(default=None, foreign_key="part.id")
    at: datetime = Field(default_factory=utcnow)
    source: str
    state: State = Field(sa_type=StoredEnum(State))
    code: int | None = Field(default=None, description="send code from the provider, if any")
    status_code: int | None = None
    message_status: int | None = None
    description: str | None = None


class OptOut(SQLModel, table=True):
    """A recipient's consent on a line: suppressed (they texted STOP) while `lifted_at` is null.

    The row stays when START lifts it, so that its `changed_at` keeps ordering later changes."""

    __tablename__ = "opt_out"
    __table_args__ = (UniqueConstraint("line_id", "number", name="uq_opt_out_line_number"),)

    id: int | None = Field(default=None, primary_key=True)
    line_id: int = Field(foreign_key="line.id")
    number: str = Field(description="E.164")
    source: str = Field(description="who made the latest change: inbound, send:-1234, status:1110, manual")
    created_at: datetime = Field(default_factory=utcnow)
    changed_at: datetime = Field(
        default_factory=utcnow, description="when the latest change happened (the provider's time for a text)"
    )
    lifted_at: datetime | None = Field(
        default=None, description="set while the recipient may be texted again"
    )


class ProviderMessageRow(SQLModel, table=True):
    """A message the provider reported that is not one of our parts: texts received (MO) and texts
    sent from the provider's own apps (ZO), from webhooks or `outbox sync`."""

    __tablename__ = "provider_message"
    __table_args__ = (
        UniqueConstraint("line_id", "provider_id", name="uq_provider_message_line_provider_id"),
        Index("ix_provider_message_line_other", "line_id", "other"),
    )

    id: int | None = Field(default=None, primary_key=True)
    provider_id: str
    line_id: int = Field(foreign_key="line.id")
    direction: str = Field(description="MO received, ZO sent")
    other: str = Field(description="the other party, E.164")
    body: str | None = None
    fingerprint: str | None = None
    status_code: int | None = None
    message_status: int | None = None
    created_at: datetime | None = Field(default=None, description="the provider's dateCreated")
    recorded_at: datetime = Field(default_factory=utcnow)
    source: str = Field(description="webhook or sync")


class ApiKey(SQLModel, table=True):
    """A key of the HTTP API: only its hash is kept; it may be scoped to some lines."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    name: str | None = None
    key_hash: str = Field(unique=True, index=True, description="sha256 hex of the key")
    lines: list[str] | None = Field(
        default=None, sa_column=Column("lines", JSON), description="E.164 numbers; None: every line"
    )
    signing_secret: str = Field(repr=False, description="signs its status callbacks: a credential")
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class CallbackDelivery(SQLModel, table=True):
    """One state change of a message to POST to its status callback URL, until it is taken or given up."""

    __tablename__ = "callback_delivery"
    __table_args__ = (Index("ix_callback_delivery_pending", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", index=True)
    state: str
    at: datetime
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, description="None once delivered or given up")
    delivered_at: datetime | None = None
    gave_up_at: datetime | None = None
    last_error: str | None = None
