"""`outbox sync LINE`: pull the line's conversations and messages from the provider into the store,
so texts sent from the provider's own apps, and texts received, are visible here too. Statuses of
our own parts are applied through the one status writer; everything else is kept once by id."""

from __future__ import annotations

from dataclasses import dataclass

from worker.inbound.messages import record_provider_message
from worker.inbound.optouts import apply_keyword
from worker.infra.runtime import Runtime
from worker.pipeline.delivery import record_status
from worker.planning import normalize_number
from worker.store.db import transaction
from worker.store.lines import line_by_number, line_of, recipients_of
from worker.store.models import utcnow
from worker.store.record import lock_message
from worker.store.sent import part_by_provider_id
from worker.store.states import Source
from worker.zipwhip.results import ProviderMessage

PAGE = 100


@dataclass
class SyncReport:
    """What a sync found."""

    conversations: int = 0
    messages: int = 0
    new: int = 0
    ours_updated: int = 0
    contacts_pushed: int = 0


def sync_line(runtime: Runtime, phone: str, max_messages: int = 1000) -> SyncReport:
    """Pull conversations (and each one's messages) into the store; push contacts if configured."""
    number = normalize_number(phone, field="line", limits=runtime.limits)
    with transaction(runtime.engine) as session:
        line = line_by_number(session, number)
        if line is None or not line.session_key:
            raise LookupError(f"line {number} is not logged in: run `outbox line add {phone}` first")
        key, line_id = line.session_key, line.id or 0
    report = SyncReport()
    for fingerprint in _fingerprints(runtime, key, max_messages):
        report.conversations += 1
        page = runtime.client.get_conversation(key, fingerprint, 0, PAGE)
        for message in page.messages:
            report.messages += 1
            _keep(runtime, line_id, message, report)
            if report.messages >= max_messages:
                break
    if runtime.settings.push_contacts:
        report.contacts_pushed = _push_contacts(runtime, line_id, key)
    return report


def _fingerprints(runtime: Runtime, key: str, max_messages: int) -> list[str]:
    """Every conversation's fingerprint, page by page (at most `max_messages` of them)."""
    found: list[str] = []
    while len(found) < max_messages:
        batch = runtime.client.list_conversations(key, len(found), PAGE)
        found.extend(c.fingerprint or "" for c in batch.conversations)
        if len(batch.conversations) < PAGE:
            break
    return [f for f in found if f]


def _keep(runtime: Runtime, line_id: int, message: ProviderMessage, report: SyncReport) -> None:
    now = utcnow()
    with transaction(runtime.engine) as session:
        line = line_of(session, line_id)
        assert line is not None
        part = part_by_provider_id(session, line_id, message.id)
        if part is not None:
            locked = lock_message(session, part.message_id)
            mine = locked.part(part.id) if locked else None
            if locked and mine and message.status_code is not None:
                report.ours_updated += record_status(
                    session, locked, mine, message.status_code, message.message_status, Source.POLL, now
                )
            return
        row, created = record_provider_message(session, line, message, "sync", now)
        report.new += created
        if created and row is not None and row.direction == "MO":
            at = row.created_at or now  # the newest word wins, in whatever order sync meets them
            apply_keyword(session, line.id or 0, row.other, row.body, at, source="inbound")


def _push_contacts(runtime: Runtime, line_id: int, key: str) -> int:
    with transaction(runtime.engine) as session:
        recipients = recipients_of(session, line_id)
    for recipient in recipients:
        runtime.client.save_contact(key, recipient)
    return len(recipients)
