"""Delivery tracking by polling each line's `message/list` (and `message/get`) until a final status
or the horizon."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlmodel import Session, col, select, update

from worker.hooks import notify_final
from worker.lines import mark_needs_login
from worker.runtime import Runtime
from worker.store.db import transaction
from worker.store.models import Line, Part, utcnow
from worker.store.record import Locked, lock_message, move_part, record_delivery
from worker.store.states import LineState, Source, State
from worker.zipwhip.errors import Classification, ProviderError
from worker.zipwhip.results import ProviderMessage

log = logging.getLogger(__name__)

MAX_DUE_PER_POLL = 2000  # due parts one line poll takes on; the rest are due again at the next one
RECORD_CHUNK = 100  # messages recorded per transaction


def poll_line_step(runtime: Runtime, line_id: int) -> str:
    """Poll every due part of a line at once: pages of `message/list` (newest first) carry the
    statuses of many messages per call, back to the oldest due part; the few not found there are
    asked for one by one with `message/get`. The cost follows the messages in flight, not the history:
    paging stops at the oldest due part and after a number of pages bounded by the due count."""
    now = utcnow()
    with transaction(runtime.engine) as session:
        line = session.get(Line, line_id)
        if line is None:
            return f"line {line_id}: not found"
        if line.state != LineState.ACTIVE or not line.session_key:
            session.exec(  # polling resumes when `outbox line add` logs the line in again
                update(Part)
                .where(col(Part.line_id) == line_id, col(Part.state) == State.SENT.value)
                .values(next_poll_at=None)
            )
            return f"line {line_id}: polling waits for the line to log in"
        key = line.session_key
        due = session.exec(
            select(Part.id, Part.message_id, Part.provider_id, Part.sent_at)
            .where(Part.line_id == line_id, Part.state == State.SENT.value, col(Part.next_poll_at) <= now)
            .where(col(Part.provider_id).is_not(None))
            .order_by(col(Part.sent_at))
            .limit(MAX_DUE_PER_POLL)
        ).all()
    if not due:
        return f"line {line_id}: nothing due"
    since = min(sent or now for *_, sent in due) - timedelta(seconds=runtime.settings.reconcile_window_s)
    listed, pages = _listed(runtime, key, {provider_id for _, _, provider_id, _ in due}, since)
    answers = _answers_for_listed(runtime, line_id, listed)
    missing = [(part_id, message_id, pid) for part_id, message_id, pid, _ in due if pid not in listed]
    for part_id, message_id, provider_id in missing:
        try:
            answer: ProviderMessage | ProviderError = runtime.client.get_message(key, provider_id or "")
        except ProviderError as error:
            answer = error
        answers.setdefault(message_id, {})[part_id or 0] = answer
        if isinstance(answer, ProviderError) and answer.classification is Classification.SESSION_INVALID:
            break
    finals = _record_all(runtime, answers)
    for message_id, state in finals:
        notify_final(runtime.settings.outcome_hook, message_id, state)
    return (
        f"line {line_id}: {len(due)} due, {pages} message/list pages, "
        f"{len(missing)} by message/get, {len(finals)} now final"
    )


def _listed(
    runtime: Runtime, key: str, wanted: set[str | None], since: datetime
) -> tuple[dict[str, ProviderMessage], int]:
    """The line's recent messages by provider id, paging back until every wanted id is seen, the
    page is older than `since`, or the page budget (twice the wanted count) is spent."""
    page_size = runtime.settings.poll_page_size
    budget = 2 + (2 * len(wanted)) // page_size
    listed: dict[str, ProviderMessage] = {}
    pages = 0
    try:
        while pages < budget:
            batch = runtime.client.list_messages(key, start=pages * page_size, limit=page_size)
            pages += 1
            listed.update((m.id, m) for m in batch.messages)
            oldest = batch.messages[-1].date_created if batch.messages else None
            if wanted <= listed.keys() or len(batch.messages) < page_size or (oldest and oldest < since):
                break
    except ProviderError as error:  # the parts not listed are asked for one by one, which handles it
        log.warning("message/list failed while polling: %s", error)
    return listed, pages


def _answers_for_listed(
    runtime: Runtime, line_id: int, listed: dict[str, ProviderMessage]
) -> dict[int, dict[int, ProviderMessage | ProviderError]]:
    """Statuses for every part of ours in flight that the pages showed (due or not: it costs nothing)."""
    answers: dict[int, dict[int, ProviderMessage | ProviderError]] = {}
    if not listed:
        return answers
    with transaction(runtime.engine) as session:
        rows = session.exec(
            select(Part.id, Part.message_id, Part.provider_id)
            .where(Part.line_id == line_id, Part.state == State.SENT.value)
            .where(col(Part.provider_id).in_(list(listed)))
        ).all()
    for part_id, message_id, provider_id in rows:
        answers.setdefault(message_id, {})[part_id or 0] = listed[provider_id or ""]
    return answers


def _record_all(
    runtime: Runtime, answers: dict[int, dict[int, ProviderMessage | ProviderError]]
) -> list[tuple[int, str]]:
    """Record the answers, a chunk of messages per transaction (locks taken in id order)."""
    finals = []
    ordered = sorted(answers)
    for start in range(0, len(ordered), RECORD_CHUNK):
        with transaction(runtime.engine) as session:
            for message_id in ordered[start : start + RECORD_CHUNK]:
                _, final_state = _record(session, runtime, message_id, answers[message_id], utcnow())
                if final_state:
                    finals.append((message_id, final_state))
    return finals


def _record(
    session: Session,
    runtime: Runtime,
    message_id: int,
    answers: dict[int, ProviderMessage | ProviderError],
    now: datetime,
) -> tuple[str, str | None]:
    locked = lock_message(session, message_id)
    assert locked is not None
    for part in locked.parts:
        answer = answers.get(part.id or 0)
        if part.state != State.SENT.value or answer is None:
            continue
        if isinstance(answer, ProviderError):
            _poll_failed(session, locked, part, answer, now)
        elif answer.status_code is not None:
            _apply_status(session, locked, part, answer, now)
        if part.state == State.SENT.value and part.next_poll_at is not None:
            _schedule_next_poll(session, runtime, locked, part, now)
    return f"message {message_id}: {locked.message.state}", locked.newly_final


def _apply_status(
    session: Session, locked: Locked, part: Part, answer: ProviderMessage, now: datetime
) -> None:
    assert answer.status_code is not None
    record_delivery(session, locked, part, answer.status_code, answer.message_status, Source.POLL, now)


def _poll_failed(session: Session, locked: Locked, part: Part, error: ProviderError, now: datetime) -> None:
    if error.classification is Classification.SESSION_INVALID:
        mark_needs_login(session, locked.message.line_id, now)
        part.next_poll_at = None
        return
    log.warning("poll of part %s failed: %s", part.position + 1, error)


def _schedule_next_poll(
    session: Session, runtime: Runtime, locked: Locked, part: Part, now: datetime
) -> None:
    """Back off between polls; past the horizon the part is unknown (kept visible, no more polls)."""
    s = runtime.settings
    horizon = (part.sent_at or now) + timedelta(seconds=s.poll_horizon_s)
    if now >= horizon:
        part.next_poll_at = None
        description = f"no final status within {s.poll_horizon_s / 3600:g} h"
        move_part(session, locked, part, State.UNKNOWN, Source.POLL, now, description=description)
        return
    part.poll_count += 1
    delay = s.poll_delays_s[min(part.poll_count, len(s.poll_delays_s) - 1)]
    part.next_poll_at = min(now + timedelta(seconds=delay), horizon)
