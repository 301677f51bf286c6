"""Reconciling a send whose outcome is unknown: find it at the provider before anything is resent.

A read timeout or a dropped connection after the request left means the provider may have the
message. We look for it in `message/list` (newest first, back to a little before the attempt): found,
it is sent with the provider's id; still absent once enough time has passed for any in-flight request
to land, it is proven absent and sent again. Never a blind resend.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session

from worker.callbacks import notify_final
from worker.infra.runtime import Runtime
from worker.pipeline.decide import Decision, Search, decide_search
from worker.pipeline.delivery import record_status
from worker.pipeline.dispatch import Outbox, try_dispatch
from worker.store.db import transaction
from worker.store.lines import line_of, mark_needs_login
from worker.store.models import Part, utcnow
from worker.store.record import Locked, lock_message, mark_sent, move_part
from worker.store.schedule import reconcile_again, send_again
from worker.store.sent import provider_ids_since
from worker.store.states import LineState, Source, State
from worker.zipwhip.client import ZipwhipClient
from worker.zipwhip.errors import ProviderError
from worker.zipwhip.results import ProviderMessage

log = logging.getLogger(__name__)

PAGE_SIZE = 100
MAX_PAGES = 20  # bounds the search on a very busy line


@dataclass(frozen=True)
class Wanted:
    """What the lost send looked like."""

    part_id: int
    session_key: str = field(repr=False)  # a credential: never in a repr, a log or a traceback
    recipient: str
    body: str
    since: datetime
    known_ids: frozenset[str]


def reconcile_step(runtime: Runtime, message_id: int) -> str:
    """Look for a message's unknown part at the provider and settle it."""
    with transaction(runtime.engine) as session:
        wanted = _wanted(session, runtime, message_id)
    if isinstance(wanted, str):
        return wanted
    try:
        found: ProviderMessage | ProviderError | None = find_sent(runtime.client, wanted)
    except ProviderError as error:
        found = error
    outbox = Outbox()
    with transaction(runtime.engine) as session:
        summary, final_state = _settle(session, runtime, message_id, wanted, found, utcnow(), outbox)
        outbox.journal(runtime.redis)
    outbox.publish()
    if final_state:
        notify_final(runtime.settings.outcome_hook, message_id, final_state)
    return summary


def _unknown_part(locked: Locked) -> Part | None:
    return next((p for p in locked.parts if p.state == State.UNKNOWN.value and not p.provider_id), None)


def _wanted(session: Session, runtime: Runtime, message_id: int) -> Wanted | str:
    locked = lock_message(session, message_id)
    part = _unknown_part(locked) if locked else None
    if locked is None or part is None:
        return f"message {message_id}: nothing to reconcile"
    line = line_of(session, locked.message.line_id)
    assert line is not None
    if line.state != LineState.ACTIVE or not line.session_key:
        reconcile_again(part, None)
        return f"message {message_id}: reconciliation waits for the line to log in"
    attempt_at = part.claimed_at or part.unknown_since or utcnow()
    since = attempt_at - timedelta(seconds=runtime.settings.reconcile_window_s)  # clock skew
    return Wanted(
        part_id=part.id or 0,
        session_key=line.session_key,
        recipient=locked.message.recipient,
        body=part.body,
        since=since,
        known_ids=provider_ids_since(session, line.id or 0, since),
    )


def _digits(number: str | None) -> str:
    return re.sub(r"\D", "", number or "")[-10:]


def matches(message: ProviderMessage, wanted: Wanted) -> bool:
    """True when a provider message is the lost send: to the recipient, same body, not yet ours."""
    if message.type not in (None, "ZO") or message.id in wanted.known_ids:
        return False
    if _digits(message.dest_address or message.address) != _digits(wanted.recipient):
        return False
    return (message.body or "") == wanted.body


def find_sent(client: ZipwhipClient, wanted: Wanted) -> ProviderMessage | None:
    """The oldest matching message at the provider sent after the attempt began, or None."""
    return _oldest_match(_recent(client, wanted), wanted)


def _recent(client: ZipwhipClient, wanted: Wanted) -> Iterable[ProviderMessage]:
    for page in range(MAX_PAGES):
        batch = client.list_messages(wanted.session_key, start=page * PAGE_SIZE, limit=PAGE_SIZE)
        yield from batch.messages
        oldest = batch.messages[-1].date_created if batch.messages else None
        if len(batch.messages) < PAGE_SIZE or (oldest is not None and oldest < wanted.since):
            return


def _oldest_match(messages: Iterable[ProviderMessage], wanted: Wanted) -> ProviderMessage | None:
    candidates = [
        m
        for m in messages
        if matches(m, wanted) and (m.date_created is None or m.date_created >= wanted.since)
    ]
    return candidates[-1] if candidates else None  # newest first: the last is the oldest


def _settle(
    session: Session,
    runtime: Runtime,
    message_id: int,
    wanted: Wanted,
    found: ProviderMessage | ProviderError | None,
    now: datetime,
    outbox: Outbox,
) -> tuple[str, str | None]:
    locked = lock_message(session, message_id)
    assert locked is not None
    part = next((p for p in locked.parts if p.id == wanted.part_id), None)
    if part is None or part.state != State.UNKNOWN.value or part.provider_id:
        return f"message {message_id}: already settled", None
    label = f"message {message_id} part {part.position + 1}/{len(locked.parts)}"
    s = runtime.settings
    error = found if isinstance(found, ProviderError) else None
    search = Search(found=isinstance(found, ProviderMessage), error=error)
    attempt_at = part.claimed_at or part.unknown_since or now
    settle = timedelta(seconds=s.reconcile_settle_s)
    decision = decide_search(search, now - attempt_at, settle, part.attempts, runtime.retry_policy)
    later = now + timedelta(seconds=s.reconcile_delay_s)

    def move(state: State, description: str) -> None:
        move_part(session, locked, part, state, Source.RECONCILE, now, description=description)

    match decision:
        case Decision.SENT:
            assert isinstance(found, ProviderMessage)
            _found(session, runtime, locked, part, found, now, outbox)
            summary = f"found at the provider as {found.id}"
        case Decision.AWAIT_LOGIN:
            mark_needs_login(session, locked.message.line_id, wanted.session_key, now)
            reconcile_again(part, None)
            summary = "line needs login; reconciliation waits"
        case Decision.LOOK_AGAIN if error is not None:
            reconcile_again(part, later)
            log.warning("reconciliation search failed: %s", error)
            summary = f"search failed ({error.kind.value}); looking again later"
        case Decision.LOOK_AGAIN:
            reconcile_again(part, min(later, attempt_at + settle))  # look again once absence proves it
            summary = "not found yet; looking again"
        case Decision.GIVE_UP:
            move(State.FAILED, f"not accepted by the provider after {part.attempts} attempts")
            summary = "failed: attempts used up"
        case _:
            send_again(part, now)
            move(State.QUEUED, "proven absent at the provider; sending again")
            summary = "not at the provider; sending again"
    return f"{label}: {summary}", locked.newly_final


def _found(
    session: Session,
    runtime: Runtime,
    locked: Locked,
    part: Part,
    found: ProviderMessage,
    now: datetime,
    outbox: Outbox,
) -> None:
    description = f"found at the provider as {found.id}"
    sent_at = part.claimed_at or now
    mark_sent(
        session,
        locked,
        part,
        (found.id, found.fingerprint),
        sent_at,
        runtime.polls,
        Source.RECONCILE,
        now,
        description,
    )
    if found.status_code is not None:
        record_status(session, locked, part, found.status_code, found.message_status, Source.RECONCILE, now)
    line = line_of(session, locked.message.line_id)
    if line is not None:
        try_dispatch(session, runtime, locked, line, now, outbox)
