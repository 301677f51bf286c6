"""Messages the provider tells us about that are not our parts: texts received (MO) and texts sent
from the provider's own apps (ZO). Recorded once each (by provider id), from webhooks or a sync."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from worker.planning import PlanningError, normalize_number
from worker.store.inbox import keep_once, provider_message
from worker.store.models import Line, ProviderMessageRow
from worker.zipwhip.results import ProviderMessage


def other_party(line: Line, message: ProviderMessage) -> str | None:
    """The number at the far end, in E.164: the sender of an MO, the recipient of a ZO."""
    received = message.type == "MO"
    candidates = [message.source_address] if received else [message.dest_address]
    candidates.append(message.address)
    for raw in candidates:
        if not raw:
            continue
        try:
            number = normalize_number(raw, field="line")  # lenient: the provider already carried it
        except PlanningError:
            continue
        if number != line.phone:
            return number
    return None


def record_provider_message(
    session: Session, line: Line, message: ProviderMessage, source: str, now: datetime
) -> tuple[ProviderMessageRow | None, bool]:
    """Keep the message if it is new; returns (row, created). Repeats change nothing."""
    existing = provider_message(session, line.id or 0, message.id)
    if existing is not None:
        return existing, False
    other = other_party(line, message)
    if other is None:
        return None, False
    row = ProviderMessageRow(
        provider_id=message.id,
        line_id=line.id or 0,
        direction="MO" if message.type == "MO" else "ZO",
        other=other,
        body=message.body,
        fingerprint=message.fingerprint,
        status_code=message.status_code,
        message_status=message.message_status,
        created_at=message.date_created,
        recorded_at=now,
        source=source,
    )
    return keep_once(session, row)


def inbound_view(row: ProviderMessageRow, line: Line) -> dict[str, object]:
    """What the application's inbound hook is given."""
    return {
        "id": row.id,
        "line": line.phone,
        "from": row.other,
        "body": row.body,
        "provider_id": row.provider_id,
        "received_at": (row.created_at or row.recorded_at).isoformat(),
    }
