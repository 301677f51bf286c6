"""The producer side: validate and plan at once, then record the messages durably.

Bad input raises one `PlanningError` naming every problem, and records nothing. Messages, their
planned parts and their files are written in one transaction. Nothing is published here: the
release job (every second) hands due parts to the send queue at each line's rate, in batches, so a
producer costs one short transaction and never touches the broker.

One text or many go through the same path; many in one call share the transaction, its round trips
and its commit (one disk flush), which is what makes a blast fast (see `outbox bench`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from worker.dispatch import AtCommit
from worker.planning import FileInput, Plan, PlanningError, Problem, normalize_number, plan_message
from worker.runtime import Runtime
from worker.store.models import utcnow
from worker.store.new_messages import LineFacts, NewMessage, existing_message, insert_messages, look_up_line
from worker.store.states import Priority

IDEMPOTENCY_KEY_MAX = 200
MAX_TEXTS_PER_CALL = 10_000  # one transaction; more in one call would hold it open too long


@dataclass(frozen=True)
class TextRequest:
    """One text as application code asks for it: the arguments of `send_message`."""

    line: str
    to: str
    body: str | None = None
    attachments: Sequence[FileInput | str] = ()
    idempotency_key: str | None = None
    send_at: datetime | None = None
    expires_at: datetime | None = None
    metadata: Mapping[str, Any] | None = None
    priority: str | Priority = "normal"


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
    priority: str | Priority = "normal",
) -> int:
    """Record one message to send and return its id (see `tasks.send_message`)."""
    request = TextRequest(
        line, to, body, attachments, idempotency_key, send_at, expires_at, metadata, priority
    )
    return _enqueue(runtime, [request], indexed=False)[0]


def enqueue_many(runtime: Runtime, requests: Iterable[TextRequest | Mapping[str, Any]]) -> list[int]:
    """Record many messages in one transaction and return their ids in order (see
    `tasks.send_messages`); a problem with any of them records none, and names each by its index."""
    problems: list[Problem] = []
    texts = [_request(item, n, problems) for n, item in enumerate(requests)]
    if len(texts) > MAX_TEXTS_PER_CALL:
        raise PlanningError(
            [Problem("messages", f"at most {MAX_TEXTS_PER_CALL:,} per call, not {len(texts):,}")]
        )
    return _enqueue(runtime, texts, indexed=True, problems=problems) if texts else []


_REQUEST_FIELDS = frozenset(f.name for f in fields(TextRequest))


def _request(item: TextRequest | Mapping[str, Any], n: int, problems: list[Problem]) -> TextRequest | None:
    if isinstance(item, TextRequest):
        return item
    if not isinstance(item, Mapping):
        problems.append(Problem(f"messages[{n}]", f"must be a mapping, not {type(item).__name__}"))
        return None
    unknown = sorted(set(item) - _REQUEST_FIELDS)
    missing = sorted({"line", "to"} - set(item))
    if unknown or missing:
        what = [f"unknown {', '.join(unknown)}"] if unknown else []
        what += [f"missing {', '.join(missing)}"] if missing else []
        problems.append(Problem(f"messages[{n}]", "; ".join(what)))
        return None
    return TextRequest(**item)


def _enqueue(
    runtime: Runtime,
    requests: Sequence[TextRequest | None],
    *,
    indexed: bool,
    problems: Sequence[Problem] = (),
) -> list[int]:
    """Check every request (None: one already found malformed, named in `problems`), then record
    them all or raise naming every problem."""
    now = utcnow()
    found = list(problems)
    checked: list[NewMessage | None] = []
    line_numbers: list[str | None] = []
    for n, request in enumerate(requests):
        own: list[Problem] = []
        checked.append(_check(runtime, request, now, own) if request else None)
        found += _named(own, n if indexed else None)
        plan = checked[-1].plan if checked[-1] else None
        line_numbers.append(plan.line if plan else _line_number(runtime, request.line) if request else None)
    at_commit = AtCommit(runtime)
    try:
        with runtime.engine.begin() as connection:
            ids = _record_all(connection, requests, checked, line_numbers, now, found, indexed, at_commit)
    except IntegrityError:
        # An idempotency key raced us from another producer: take them one by one, so that each
        # finds the message that won.
        if len(requests) == 1 and requests[0] is not None:
            return [_existing_after_race(runtime, line_numbers[0], requests[0].idempotency_key)]
        return [_enqueue(runtime, [r], indexed=False)[0] for r in requests]
    at_commit.publish()
    return ids


def _named(problems: list[Problem], index: int | None) -> list[Problem]:
    """A request's problems, named by its index when a call carries several."""
    if index is None:
        return problems
    return [Problem(f"messages[{index}].{p.field}", p.message) for p in problems]


def _check(
    runtime: Runtime, request: TextRequest, now: datetime, problems: list[Problem]
) -> NewMessage | None:
    plan = _plan(runtime, request, problems)
    send_at, expires_at = _check_times(request.send_at, request.expires_at, now, problems)
    _check_extras(request.idempotency_key, request.metadata, problems)
    priority = _check_priority(request.priority, problems)
    if plan is None or problems:
        return None
    # The line's id comes from the database, with the other checks that need it.
    return NewMessage(0, plan, request.idempotency_key, send_at, expires_at, request.metadata, priority)


def _check_priority(value: object, problems: list[Problem]) -> Priority:
    if isinstance(value, Priority):
        return value
    try:
        return Priority.named(value) if isinstance(value, str) else Priority.named(repr(value))
    except ValueError as error:
        problems.append(Problem("priority", str(error)))
        return Priority.NORMAL


def _plan(runtime: Runtime, request: TextRequest, problems: list[Problem]) -> Plan | None:
    try:
        return plan_message(
            request.line, request.to, request.body, request.attachments, limits=runtime.limits
        )
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


def _record_all(
    connection: Connection,
    requests: Sequence[TextRequest | None],
    checked: list[NewMessage | None],
    line_numbers: list[str | None],
    now: datetime,
    problems: list[Problem],
    indexed: bool,
    at_commit: AtCommit,
) -> list[int]:
    """Look the lines, opt-outs and idempotency keys up (a query per line), then insert what is new
    (what may go at once already released to the workers: `at_commit`)."""
    ids: list[int | None] = [None] * len(requests)
    line_ids: list[int] = [0] * len(requests)
    lines: dict[int, LineFacts] = {}
    for number in {n for n in line_numbers if n is not None}:
        mine = [i for i, n in enumerate(line_numbers) if n == number]
        mine_checked = [c for i in mine if (c := checked[i])]
        recipients = sorted({c.plan.to for c in mine_checked})
        keys = sorted({c.idempotency_key for c in mine_checked if c.idempotency_key})
        found = look_up_line(connection, number, recipients, keys)
        if found is None:
            raw = next(r.line for i in mine if (r := requests[i]))
            hint = f"unknown line {number}: add it with `outbox line add {raw}`"
            problems += [p for i in mine for p in _named([Problem("line", hint)], i if indexed else None)]
            continue
        lines[found.line_id] = found
        for i in mine:
            line_ids[i], c = found.line_id, checked[i]
            if c is not None and c.idempotency_key in found.existing:
                ids[i] = found.existing[c.idempotency_key]
            elif c is not None and c.plan.to in found.opted_out:
                stop = Problem("to", f"{c.plan.to} opted out of texts from {number} (texted STOP)")
                problems += _named([stop], i if indexed else None)
    if problems:
        raise PlanningError(problems)
    fresh, repeats = _new_requests(checked, line_ids, ids)
    items = [replace(c, line_id=line_ids[i]) for i in fresh if (c := checked[i])]
    inserted = insert_messages(connection, items, now, at_commit.lease(connection, items, lines, now))
    at_commit.recorded(inserted)
    for i, message_id in zip(fresh, inserted, strict=True):
        ids[i] = message_id
    for i, first in repeats.items():
        ids[i] = ids[first]
    return [message_id or 0 for message_id in ids]


def _new_requests(
    checked: list[NewMessage | None], line_ids: list[int], ids: list[int | None]
) -> tuple[list[int], dict[int, int]]:
    """The requests to insert, and those repeating an idempotency key of an earlier one in the same
    call (by index: the first one's message is theirs)."""
    first_with_key: dict[tuple[int, str], int] = {}
    repeats: dict[int, int] = {}
    fresh = []
    for i, c in enumerate(checked):
        if ids[i] is not None or c is None:
            continue
        if c.idempotency_key is not None:
            key = (line_ids[i], c.idempotency_key)
            if key in first_with_key:
                repeats[i] = first_with_key[key]
                continue
            first_with_key[key] = i
        fresh.append(i)
    return fresh, repeats


def _existing_after_race(runtime: Runtime, line_number: str | None, key: str | None) -> int:
    with runtime.engine.connect() as connection:
        found = existing_message(connection, line_number, key)
    if found is None:
        raise RuntimeError("message insert conflicted but no earlier message was found")
    return found
