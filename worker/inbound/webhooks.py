"""The provider's webhooks: URLs with a per-line secret, what each event does, and registering them.

A webhook URL is `<public url>/hooks/<line digits>/<token>/<type>/<event>`, where the token is an
HMAC of the line under `webhook_secret_key`: a forged call is refused by arithmetic alone, before
the database is touched. Payloads are the flat message object of the contract (no envelope; the
event is known from the URL). Statuses go through the same one writer as polling: monotonic and
idempotent, so duplicates and out-of-order events change nothing, and a final status ends polling.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from worker.inbound.messages import other_party, record_provider_message
from worker.inbound.optouts import apply_keyword
from worker.infra.constants import TASK_INBOUND, TASK_NOTIFY
from worker.infra.runtime import Runtime
from worker.pipeline.delivery import record_status
from worker.pipeline.dispatch import Outbox, try_dispatch
from worker.store.db import transaction
from worker.store.lines import line_by_number
from worker.store.models import Line, Part, utcnow
from worker.store.record import lock_message, mark_sent
from worker.store.sent import awaiting_answer, part_by_provider_id
from worker.store.states import Source, State
from worker.zipwhip import parse
from worker.zipwhip.results import ProviderMessage, Webhook

log = logging.getLogger(__name__)
EVENTS = (("message", "progress"), ("message", "send"), ("message", "receive"), ("optout", "change"))


def hook_token(secret_key: str, line: str) -> str:
    """The secret that proves a webhook call is for this line."""
    return hmac.new(secret_key.encode(), line.encode(), hashlib.sha256).hexdigest()[:40]


def token_matches(secret_key: str, line: str, token: str) -> bool:
    """Constant-time check of a token from a URL, whatever characters it holds (compared as bytes:
    compare_digest refuses a str that is not ASCII)."""
    return hmac.compare_digest(hook_token(secret_key, line).encode(), token.encode("utf-8", "replace"))


def hook_url(public_url: str, secret_key: str, line: str, type_: str, event: str) -> str:
    """The URL to register for one event of one line."""
    return f"{public_url.rstrip('/')}/hooks/{line.lstrip('+')}/{hook_token(secret_key, line)}/{type_}/{event}"


class BadPayload(ValueError):
    """A webhook body that is not the contract's message object."""


@dataclass
class Handled:
    """What an event did, and the tasks to publish now that it is recorded."""

    summary: str
    outbox: Outbox = field(default_factory=Outbox)


def parse_payload(payload: Any, event: str) -> ProviderMessage:
    """The message object of a webhook body; BadPayload if it is not one."""
    if not isinstance(payload, Mapping):
        raise BadPayload("the body is not a JSON object")
    try:
        message = parse.message(payload)
    except (parse.Malformed, TypeError, ValueError) as error:
        raise BadPayload(str(error)) from None
    if event == "progress" and message.status_code is None:
        raise BadPayload("a progress event needs a statusCode")
    return message


def handle_event(runtime: Runtime, line_number: str, type_: str, event: str, payload: Any) -> Handled:
    """Apply one webhook call; raises BadPayload for a malformed body, LookupError for no such line."""
    message = parse_payload(payload, event)
    handled = Handled("")
    with transaction(runtime.engine) as session:
        line = line_by_number(session, line_number)
        if line is None:
            raise LookupError(line_number)
        now = utcnow()
        if (type_, event) == ("message", "progress"):
            handled.summary = _progress(session, line, message, now, handled.outbox)
        elif (type_, event) == ("message", "send"):
            handled.summary = _sent(session, runtime, line, message, now, handled.outbox)
        else:
            handled.summary = _received(session, line, message, now, handled.outbox)
        handled.outbox.journal(runtime.redis)
    handled.outbox.publish()
    return handled


def _our_part(session: Session, line: Line, provider_id: str) -> Part | None:
    return part_by_provider_id(session, line.id or 0, provider_id)


def _progress(session: Session, line: Line, message: ProviderMessage, now: datetime, outbox: Outbox) -> str:
    part = _our_part(session, line, message.id)
    if part is None:
        return "not one of ours (or not recorded yet: polling will see it)"
    locked = lock_message(session, part.message_id)
    mine = locked.part(part.id) if locked else None
    assert locked is not None and mine is not None and message.status_code is not None
    changed = record_status(
        session, locked, mine, message.status_code, message.message_status, Source.WEBHOOK, now
    )
    if locked.newly_final:
        outbox.add(TASK_NOTIFY, part.message_id)
    return f"message {part.message_id}: " + (f"now {locked.message.state}" if changed else "nothing new")


def _sent(
    session: Session, runtime: Runtime, line: Line, message: ProviderMessage, now: datetime, outbox: Outbox
) -> str:
    """A text the line sent: ours with an unknown outcome is settled; one from another app is kept."""
    if _our_part(session, line, message.id) is not None:
        return "already known"
    other = other_party(line, message)
    pending = awaiting_answer(session, line.id or 0, other, message.body or "") if other else []
    unknown = next((p for p in pending if p.state == State.UNKNOWN.value), None)
    if unknown is None:
        if pending:
            return "ours, its answer is on the way"
        record_provider_message(session, line, message, "webhook", now)
        return "sent from another app: recorded"
    locked = lock_message(session, unknown.message_id)
    mine = locked.part(unknown.id) if locked else None
    assert locked is not None and mine is not None
    sent_at = mine.claimed_at or now
    ids = (message.id, message.fingerprint)
    description = f"send event for {message.id}"
    mark_sent(session, locked, mine, ids, sent_at, runtime.polls, Source.WEBHOOK, now, description)
    try_dispatch(session, runtime, locked, line, now, outbox)
    return f"message {unknown.message_id}: unknown outcome settled as sent"


def _received(session: Session, line: Line, message: ProviderMessage, now: datetime, outbox: Outbox) -> str:
    """A text to the line (or an opt-out change): recorded once; a STOP/START word changes consent
    once, when the text is first recorded, and only if no later change is known (a provider's retry
    of an old START must not undo a newer STOP)."""
    row, created = record_provider_message(session, line, message, "webhook", now)
    if row is None:
        return "no sender to record"
    if not created:
        return "received again: nothing new"
    if row.direction != "MO":
        return "sent from another app: recorded"
    at = row.created_at or now
    change = apply_keyword(session, line.id or 0, row.other, row.body, at, source="inbound")
    session.flush()
    outbox.add(TASK_INBOUND, row.id or 0)
    return "received" + (f" ({change})" if change else "")


def register_webhooks(runtime: Runtime, session_key: str, line: str, public_url: str) -> list[Webhook]:
    """Make the provider call us for every event of the line: add what is missing, update what
    points elsewhere under our URL (a changed key), leave the rest. Returns the line's hooks."""
    secret = runtime.settings.webhook_secret_key
    if not secret:
        raise ValueError("set OUTBOX_WEBHOOK_SECRET_KEY first: the hook URLs carry a secret derived from it")
    client = runtime.client
    existing = client.list_webhooks(session_key)
    ours = f"{public_url.rstrip('/')}/hooks/"
    for type_, event in EVENTS:
        url = hook_url(public_url, secret, line, type_, event)
        same = [h for h in existing if (h.type, h.event) == (type_, event)]
        if any(h.url == url for h in same):
            continue
        stale = next((h for h in same if h.url.startswith(ours)), None)
        if stale is not None:
            client.update_webhook(session_key, stale.webhook_id, url)
        else:
            client.add_webhook(session_key, type_, event, url)
    return client.list_webhooks(session_key)
