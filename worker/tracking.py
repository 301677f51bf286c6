"""Delivery tracking by polling `message/get` until a final status or the horizon."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlmodel import Session

from worker.hooks import notify_final
from worker.lines import mark_needs_login
from worker.optouts import add_opt_out
from worker.runtime import Runtime
from worker.store.db import transaction
from worker.store.models import Line, Part, utcnow
from worker.store.record import Locked, lock_message, move_part, record_delivery
from worker.store.states import LineState, Source, State
from worker.zipwhip.errors import Classification, ProviderError
from worker.zipwhip.results import ProviderMessage

log = logging.getLogger(__name__)

OPTED_OUT_STATUS = 1110  # messageStatus "User Opted Out (STOP)"


def poll_step(runtime: Runtime, message_id: int) -> str:
    """Poll every sent, not yet final part of a message once; schedule the next poll."""
    with transaction(runtime.engine) as session:
        targets = _targets(session, message_id)
    if isinstance(targets, str):
        return targets
    session_key, wanted = targets
    answers: dict[int, ProviderMessage | ProviderError] = {}
    for part_id, provider_id in wanted:
        try:
            answers[part_id] = runtime.client.get_message(session_key, provider_id)
        except ProviderError as error:
            answers[part_id] = error
            if error.classification is Classification.SESSION_INVALID:
                break
    with transaction(runtime.engine) as session:
        summary, final_state = _record(session, runtime, message_id, answers, utcnow())
    if final_state:
        notify_final(runtime.settings.outcome_hook, message_id, final_state)
    return summary


def _targets(session: Session, message_id: int) -> tuple[str, list[tuple[int, str]]] | str:
    locked = lock_message(session, message_id)
    if locked is None:
        return f"message {message_id}: not found"
    parts = [p for p in locked.parts if p.state == State.SENT.value and p.provider_id]
    if not parts:
        return f"message {message_id}: nothing to poll ({locked.message.state})"
    line = session.get(Line, locked.message.line_id)
    assert line is not None
    if line.state != LineState.ACTIVE or not line.session_key:
        for part in parts:
            part.next_poll_at = None  # resumes when the line logs in again
        return f"message {message_id}: polling waits for the line to log in"
    return line.session_key, [(p.id or 0, p.provider_id or "") for p in parts]


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
    if answer.message_status == OPTED_OUT_STATUS:
        add_opt_out(session, locked.message.line_id, locked.message.recipient, source="status:1110")


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
