"""The producer side: validate and plan at once, record the message durably, then publish.

Bad input raises one `PlanningError` naming every problem, and records nothing. The message, its
planned parts and their files are written in one transaction; the send task is published only after
that commit (a task published earlier could run before the row exists).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from worker.dispatch import Outbox, try_dispatch
from worker.optouts import is_opted_out
from worker.planning import FileInput, Plan, PlanningError, Problem, normalize_number, plan_message
from worker.runtime import Runtime
from worker.store.db import transaction
from worker.store.models import Attachment, Line, Message, Part, utcnow
from worker.store.record import Locked, add_event
from worker.store.states import Source, State

IDEMPOTENCY_KEY_MAX = 200


def enqueue(
    runtime: Runtime,
    line: str,
    to: str,
    body: str | None = None,
    attachments: Sequence[FileInput | str] = (),
    *,
    idempotency_key: str | None = None,
    send_at: datetime | None = None,
    expires_at: datetime | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> int:
    """Record one message to send and return its id (see `tasks.send_message`)."""
    now = utcnow()
    problems: list[Problem] = []
    plan = _plan(runtime, line, to, body, attachments, problems)
    send_at, expires_at = _check_times(send_at, expires_at, now, problems)
    _check_extras(idempotency_key, metadata, problems)
    line_number = _line_number(runtime, line)
    outbox = Outbox()
    try:
        with transaction(runtime.engine) as session:
            line_row = _find_line(session, line_number, line, problems)
            if line_row is not None and idempotency_key:
                existing = _existing(session, line_row.id or 0, idempotency_key)
                if existing is not None:
                    return existing
            if line_row is not None and plan is not None and is_opted_out(session, line_row.id or 0, plan.to):
                problems.append(
                    Problem("to", f"{plan.to} opted out of texts from {line_row.phone} (texted STOP)")
                )
            if problems or plan is None or line_row is None:
                raise PlanningError(problems)
            locked = _record(session, line_row, plan, idempotency_key, send_at, expires_at, metadata, now)
            try_dispatch(session, runtime, locked, line_row, now, outbox)
            message_id = locked.message.id or 0
    except IntegrityError:
        # The same idempotency key raced us from another producer: its message is the one.
        return _existing_after_race(runtime, line_number, idempotency_key)
    outbox.publish()
    return message_id


def _plan(
    runtime: Runtime,
    line: str,
    to: str,
    body: str | None,
    attachments: Sequence[FileInput | str],
    problems: list[Problem],
) -> Plan | None:
    try:
        return plan_message(line, to, body, attachments, limits=runtime.limits)
    except PlanningError as error:
        problems.extend(error.problems)
        return None


def _as_utc(value: datetime) -> datetime:
    """Aware datetimes are converted; naive ones are taken to be UTC already."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _check_times(
    send_at: datetime | None, expires_at: datetime | None, now: datetime, problems: list[Problem]
) -> tuple[datetime | None, datetime | None]:
    for name, value in (("send_at", send_at), ("expires_at", expires_at)):
        if value is not None and not isinstance(value, datetime):
            problems.append(Problem(name, f"must be a datetime, not {type(value).__name__}"))
            return None, None
    send_at = _as_utc(send_at) if send_at else None
    expires_at = _as_utc(expires_at) if expires_at else None
    if expires_at is not None and expires_at <= now:
        problems.append(Problem("expires_at", f"{expires_at.isoformat()} is already past"))
    elif expires_at is not None and send_at is not None and expires_at <= send_at:
        problems.append(Problem("expires_at", "must be later than send_at"))
    return send_at, expires_at


def _check_extras(
    idempotency_key: str | None, metadata: Mapping[str, Any] | None, problems: list[Problem]
) -> None:
    if idempotency_key is not None and not (
        isinstance(idempotency_key, str) and 0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX
    ):
        problems.append(
            Problem("idempotency_key", f"must be a non-empty string of at most {IDEMPOTENCY_KEY_MAX}")
        )
    if metadata is None:
        return
    try:
        if not isinstance(metadata, Mapping):
            raise TypeError
        json.dumps(dict(metadata))
    except (TypeError, ValueError):
        problems.append(Problem("metadata", "must be a JSON-serialisable mapping"))


def _line_number(runtime: Runtime, line: str) -> str | None:
    try:
        return normalize_number(line, field="line", limits=runtime.limits)
    except PlanningError:
        return None  # the plan already named this problem


def _find_line(session: Session, number: str | None, raw: str, problems: list[Problem]) -> Line | None:
    if number is None:
        return None
    found = session.exec(select(Line).where(Line.phone == number)).first()
    if found is None:
        problems.append(Problem("line", f"unknown line {number}: add it with `outbox line add {raw}`"))
    return found


def _existing(session: Session, line_id: int, key: str) -> int | None:
    query = select(Message.id).where(Message.line_id == line_id, Message.idempotency_key == key)
    return session.exec(query).first()


def _existing_after_race(runtime: Runtime, line_number: str | None, key: str | None) -> int:
    with transaction(runtime.engine) as session:
        line = session.exec(select(Line).where(Line.phone == line_number)).first()
        found = _existing(session, line.id or 0, key) if line and key else None
    if found is None:
        raise RuntimeError("message insert conflicted but no earlier message was found")
    return found


def _record(
    session: Session,
    line: Line,
    plan: Plan,
    idempotency_key: str | None,
    send_at: datetime | None,
    expires_at: datetime | None,
    metadata: Mapping[str, Any] | None,
    now: datetime,
) -> Locked:
    message = Message(
        line_id=line.id or 0,
        recipient=plan.to,
        idempotency_key=idempotency_key,
        send_at=send_at,
        expires_at=expires_at,
        meta=dict(metadata) if metadata else None,
        created_at=now,
        updated_at=now,
    )
    session.add(message)
    session.flush()
    due = send_at if send_at and send_at > now else now
    parts: list[Part] = []
    for planned in plan.parts:
        part = Part(
            message_id=message.id or 0,
            line_id=line.id or 0,
            position=planned.index,
            kind=planned.kind.value,
            body=planned.body,
            body_bytes=planned.body_bytes,
            payload_bytes=planned.payload_bytes,
            due_at=due,
        )
        session.add(part)
        session.flush()
        parts.append(part)
        for position, file in enumerate(planned.attachments):
            session.add(
                Attachment(
                    part_id=part.id or 0,
                    position=position,
                    filename=file.filename,
                    content_type=file.content_type,
                    size=file.size,
                    from_body=file.from_body,
                    data=file.data,
                )
            )
    kinds = ", ".join(p.kind.value for p in plan.parts)
    add_event(
        session, None, message.id or 0, State.QUEUED, Source.ENQUEUE, now, description=f"planned: {kinds}"
    )
    return Locked(message, parts)
