"""The provider's delivery statuses read into what the store keeps: how far along a text is, whether
that is final, what it means in words, and whether the recipient opted out. The store knows none of
the provider's codes; every step that learns a status (poll, webhook, sync, reconciliation) records
it through `record_status`."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from worker.store.models import Part
from worker.store.record import DeliveryReport, Locked, record_delivery
from worker.store.states import Source
from worker.zipwhip.codes import delivery_status, message_status

OPTED_OUT_STATUS = 1110  # messageStatus "User Opted Out (STOP)"


def progress(status_code: int | None) -> int:
    """How far along a delivery status is: unknown < in process < queued < final."""
    if status_code is None:
        return 0
    if delivery_status(status_code).final:
        return 3
    return {1: 1, 2: 2, 3: 2}.get(status_code, 0)


def read_status(
    status_code: int, message_status_code: int | None, last_status_code: int | None
) -> DeliveryReport:
    """What a reported status says of a part whose last known status is `last_status_code`."""
    info = delivery_status(status_code)
    reason = message_status(message_status_code).description if message_status_code is not None else None
    return DeliveryReport(
        status_code=status_code,
        message_status=message_status_code,
        description=info.description + (f": {reason}" if reason else ""),
        advances=progress(status_code) > progress(last_status_code),
        final=info.final,
        delivered=info.state == "success",
        opted_out_by=f"status:{OPTED_OUT_STATUS}" if message_status_code == OPTED_OUT_STATUS else None,
    )


def record_status(
    session: Session,
    locked: Locked,
    part: Part,
    status_code: int,
    message_status_code: int | None,
    source: Source,
    now: datetime,
) -> bool:
    """Record a delivery status the provider reported for a part (its message locked); never moves
    backwards. Returns whether anything changed."""
    report = read_status(status_code, message_status_code, part.status_code)
    return record_delivery(session, locked, part, report, source, now)
