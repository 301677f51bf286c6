"""Reconciling a send whose outcome is unknown: find it at the provider before anything is resent.

A read timeout or a dropped connection after the request left means the provider may have the
message. We look for it in `message/list` (newest first, back to a little before the attempt): found,
it is sent with the provider's id; still absent once enough time has passed for any in-flight request
to land, it is proven absent and sent again. Never a blind resend.

A task takes a batch of messages, and each line's texts in doubt are looked for in one walk of its
list: a worker killed holding many claims leaves many texts to reconcile at once, and a search each
was a storm of `message/list` calls (thousands in minutes under load) that a provider answers with
rate limiting.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlmodel import Session

from worker.callbacks import notify_final
from worker.infra.runtime import Runtime
from worker.pipeline.decide import Decision, Search, decide_search
from worker.pipeline.delivery import record_status
from worker.pipeline.dispatch import Outbox, try_dispatch
from worker.pipeline.summary import batch_summary
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

    message_id: int
    part_id: int
    line_id: int
    session_key: str = field(repr=False)  # a credential: never in a repr, a log or a traceback
    recipient: str
    body: str
    since: datetime
    known_ids: frozenset[str]


@dataclass(frozen=True)
class Settled:
    """What reconciling one message did: a line for the log, its kind, its final state if it ended."""

    summary: str
    kind: str
    final_state: str | None = None


def reconcile_step(runtime: Runtime, message_ids: int | Sequence[int]) -> str:
    """Look for these messages' unknown parts at the provider (one search a line) and settle them."""
    ids = sorted({message_ids} if isinstance(message_ids, int) else set(message_ids))
    with transaction(runtime.engine) as session:
        wanted, skipped = _wanted_all(session, runtime, ids)
    found = _search_all(runtime.client, wanted)
    outbox = Outbox()
    settled = {m: Settled(summary, "skipped") for m, summary in skipped.items()}
    with transaction(runtime.engine) as session:
        now = utcnow()
        for w in sorted(wanted, key=lambda w: w.message_id):  # locks in id order, as every writer's
            settled[w.message_id] = _settle(session, runtime, w, found[w.part_id], now, outbox)
        outbox.journal(runtime.redis)
    outbox.publish()
    for message_id, result in settled.items():
        if result.final_state:
            notify_final(runtime.settings.outcome_hook, message_id, result.final_state)
    done = [settled[m] for m in ids if m in settled]
    return batch_summary([s.summary for s in done], [s.kind for s in done])


def _wanted_all(
    session: Session, runtime: Runtime, message_ids: list[int]
) -> tuple[list[Wanted], dict[int, str]]:
    """What to look for, and why the others need no search. The ids our texts already have at the
    provider are read once a line."""
    wanted, skipped = [], {}
    known: dict[int, tuple[datetime, frozenset[str]]] = {}
    for message_id in message_ids:
        result = _wanted(session, runtime, message_id)
        if isinstance(result, str):
            skipped[message_id] = result
        else:
            wanted.append(result)
    for line_id in {w.line_id for w in wanted}:
        since = min(w.since for w in wanted if w.line_id == line_id)
        known[line_id] = (since, provider_ids_since(session, line_id, since))
    return [replace(w, known_ids=known[w.line_id][1]) for w in wanted], skipped


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
        message_id=message_id,
        part_id=part.id or 0,
        line_id=line.id or 0,
        session_key=line.session_key,
        recipient=locked.message.recipient,
        body=part.body,
        since=since,
        known_ids=frozenset(),
    )


def _unknown_part(locked: Locked) -> Part | None:
    return next((p for p in locked.parts if p.state == State.UNKNOWN.value and not p.provider_id), None)


def _search_all(
    client: ZipwhipClient, wanted: list[Wanted]
) -> dict[int, ProviderMessage | ProviderError | None]:
    """Each wanted part's match at the provider (by part id): one search a line; a failed search is
    the answer for all of its line's parts."""
    found: dict[int, ProviderMessage | ProviderError | None] = {}
    for line_id in sorted({w.line_id for w in wanted}):
        group = [w for w in wanted if w.line_id == line_id]
        try:
            found.update(find_sent_all(client, group))
        except ProviderError as error:
            log.warning("reconciliation search of line %s failed: %s", line_id, error)
            found.update({w.part_id: error for w in group})
    return found


def _digits(number: str | None) -> str:
    return re.sub(r"\D", "", number or "")[-10:]


def matches(message: ProviderMessage, wanted: Wanted) -> bool:
    """True when a provider message is the lost send: to the recipient, same body, not yet ours."""
    if message.type not in (None, "ZO") or message.id in wanted.known_ids:
        return False
    if _digits(message.dest_address or message.address) != _digits(wanted.recipient):
        return False
    return (message.body or "") == wanted.body


def find_sent_all(client: ZipwhipClient, wanted: list[Wanted]) -> dict[int, ProviderMessage | None]:
    """Each lost send of one line (by part id) matched to a message at the provider, or None.

    One walk of the line's list, back to the earliest attempt. Two lost sends alike (same recipient,
    same body) never take the same message: the earlier attempt takes the oldest match."""
    recent = list(_recent(client, wanted[0].session_key, min(w.since for w in wanted)))
    taken: set[str] = set()
    found: dict[int, ProviderMessage | None] = {}
    for w in sorted(wanted, key=lambda w: (w.since, w.part_id)):
        match = _oldest_match((m for m in recent if m.id not in taken), w)
        if match is not None:
            taken.add(match.id)
        found[w.part_id] = match
    return found


def _recent(client: ZipwhipClient, session_key: str, since: datetime) -> Iterable[ProviderMessage]:
    for page in range(MAX_PAGES):
        batch = client.list_messages(session_key, start=page * PAGE_SIZE, limit=PAGE_SIZE)
        yield from batch.messages
        oldest = batch.messages[-1].date_created if batch.messages else None
        if len(batch.messages) < PAGE_SIZE or (oldest is not None and oldest < since):
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
    wanted: Wanted,
    found: ProviderMessage | ProviderError | None,
    now: datetime,
    outbox: Outbox,
) -> Settled:
    message_id = wanted.message_id
    locked = lock_message(session, message_id)
    assert locked is not None
    part = locked.part(wanted.part_id)
    if part is None or part.state != State.UNKNOWN.value or part.provider_id:
        return Settled(f"message {message_id}: already settled", "skipped")
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
            kind, summary = "sent", f"found at the provider as {found.id}"
        case Decision.AWAIT_LOGIN:
            mark_needs_login(session, locked.message.line_id, wanted.session_key, now)
            reconcile_again(part, None)
            kind, summary = "waiting", "line needs login; reconciliation waits"
        case Decision.LOOK_AGAIN if error is not None:
            reconcile_again(part, later)
            kind, summary = "looking again", f"search failed ({error.kind.value}); looking again later"
        case Decision.LOOK_AGAIN:
            reconcile_again(part, min(later, attempt_at + settle))  # look again once absence proves it
            kind, summary = "looking again", "not found yet; looking again"
        case Decision.GIVE_UP:
            move(State.FAILED, f"not accepted by the provider after {part.attempts} attempts")
            kind, summary = "failed", "failed: attempts used up"
        case _:
            send_again(part, now)
            move(State.QUEUED, "proven absent at the provider; sending again")
            kind, summary = "sending again", "not at the provider; sending again"
    return Settled(f"{label}: {summary}", kind, locked.newly_final)


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
