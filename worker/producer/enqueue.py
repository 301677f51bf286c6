"""The producer side: validate and plan at once, then record the messages durably.

Bad input raises one `PlanningError` naming every problem, and records nothing. Messages, their
planned parts and their files are written in one transaction. Nothing is published here: the
release job (every second) hands due parts to the send queue at each line's rate, in batches, so a
producer costs one short transaction and never touches the broker.

One text or many go through the same path; many in one call share the transaction, its round trips
and its commit (one disk flush), which is what makes a blast fast (see `outbox bench`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from worker.infra.runtime import Runtime
from worker.pipeline.dispatch import AtCommit
from worker.planning import (
    FileInput,
    IdempotencyConflict,
    Plan,
    PlanningError,
    Problem,
    normalize_number,
    plan_message,
)
from worker.producer.idempotency import request_digest, used_before, used_in_call
from worker.producer.request_checks import check_key, check_metadata, check_times
from worker.store.models import utcnow
from worker.store.new_messages import LineFacts, NewMessage, Origin, insert_messages, look_up_line
from worker.store.states import Priority

MAX_TEXTS_PER_CALL = 10_000  # one transaction; more in one call would hold it open too long
RECORD_ATTEMPTS = 3  # a lost race for an idempotency key is looked up again; more is a real fault


@dataclass(frozen=True)
class TextRequest:
    """One text as application code asks for it: the arguments of `send_message`."""

    line: str
    to: str
    body: str | None = None
    attachments: Iterable[FileInput | str | os.PathLike[str]] = ()
    idempotency_key: str | None = None
    send_at: datetime | None = None
    expires_at: datetime | None = None
    metadata: Mapping[str, Any] | None = None
    priority: str | Priority = "normal"
    origin: Origin | None = None  # the HTTP API's key and status callback


def enqueue(
    runtime: Runtime,
    line: str,
    to: str,
    body: str | None = None,
    attachments: Iterable[FileInput | str | os.PathLike[str]] = (),
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


def enqueue_checked(
    runtime: Runtime, requests: Sequence[TextRequest | None], problems: Sequence[Problem], *, indexed: bool
) -> list[int]:
    """Record requests another layer has read (the HTTP API): None stands for one it found
    malformed, and `problems` (named already) are raised with every other one, recording nothing."""
    return _enqueue(runtime, requests, indexed=indexed, problems=problems)


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
    attempts = RECORD_ATTEMPTS
    while True:
        at_commit = AtCommit(runtime)  # what may go to a worker at once, published after the commit
        try:
            with runtime.engine.begin() as connection:
                ids = _record_all(
                    connection, requests, checked, line_numbers, now, list(found), indexed, at_commit
                )
            at_commit.publish()
            return ids
        except IntegrityError:
            # Another producer inserted one of these idempotency keys between our look-up and our
            # insert. Look them all up again (all or none is recorded): each finds the message that
            # won, and is its id if it asked the same, or a conflict if not.
            attempts -= 1
            if not attempts:
                raise


def _named(problems: list[Problem], index: int | None) -> list[Problem]:
    """A request's problems, named by its index when a call carries several."""
    if index is None:
        return problems
    return [Problem(f"messages[{index}].{p.field}", p.message) for p in problems]


def _check(
    runtime: Runtime, request: TextRequest, now: datetime, problems: list[Problem]
) -> NewMessage | None:
    plan = _plan(runtime, request, problems)
    send_at, expires_at = check_times(request.send_at, request.expires_at, now, problems)
    check_key(request.idempotency_key, problems)
    metadata = check_metadata(request.metadata, problems)
    priority = _check_priority(request.priority, problems)
    if plan is None or problems:
        return None
    callback = (request.origin.callback_url, request.origin.callback_events) if request.origin else None
    digest = (
        request_digest(plan, send_at, expires_at, metadata, callback) if request.idempotency_key else None
    )
    # The line's id comes from the database, with the other checks that need it.
    return NewMessage(
        0, plan, request.idempotency_key, send_at, expires_at, metadata, priority, digest, request.origin
    )


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
    conflicts: list[Problem] = []
    conflicted: set[int] = set()
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
            earlier = found.existing.get(c.idempotency_key) if c and c.idempotency_key else None
            if c is not None and c.idempotency_key and earlier is not None:
                message_id, digest = earlier
                if digest is None or digest == c.request_digest:  # older rows have none: they match
                    ids[i] = message_id
                else:
                    conflicts += _named([used_before(c.idempotency_key, message_id)], i if indexed else None)
                    conflicted.add(i)
            elif c is not None and c.plan.to in found.opted_out:
                stop = Problem("to", f"{c.plan.to} opted out of texts from {number} (texted STOP)")
                problems += _named([stop], i if indexed else None)
    settled = {i for i, message_id in enumerate(ids) if message_id is not None} | conflicted
    fresh, repeats = _new_requests(checked, line_ids, settled, conflicts)
    if problems:
        raise PlanningError(problems + conflicts)
    if conflicts:
        raise IdempotencyConflict(conflicts)
    items = [replace(c, line_id=line_ids[i]) for i in fresh if (c := checked[i])]
    inserted = insert_messages(connection, items, now, at_commit.lease(connection, items, lines, now))
    at_commit.recorded(inserted)
    for i, message_id in zip(fresh, inserted, strict=True):
        ids[i] = message_id
    for i, first in repeats.items():
        ids[i] = ids[first]
    return [message_id or 0 for message_id in ids]


def _new_requests(
    checked: list[NewMessage | None], line_ids: list[int], settled: set[int], conflicts: list[Problem]
) -> tuple[list[int], dict[int, int]]:
    """The requests to insert (not `settled` by a stored message), and those repeating an
    idempotency key of an earlier one in the same call (by index: the first one's message is
    theirs); a repeat asking for something else is a conflict, added to `conflicts`."""
    first_with_key: dict[tuple[int, str], int] = {}
    repeats: dict[int, int] = {}
    fresh = []
    for i, c in enumerate(checked):
        if i in settled or c is None:
            continue
        if c.idempotency_key is not None:
            key = (line_ids[i], c.idempotency_key)
            first = first_with_key.setdefault(key, i)
            if first != i:
                other = checked[first]
                if other is not None and other.request_digest != c.request_digest:
                    conflicts += _named([used_in_call(c.idempotency_key, first)], i)
                repeats[i] = first
                continue
        fresh.append(i)
    return fresh, repeats
