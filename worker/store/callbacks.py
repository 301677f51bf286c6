"""Status callbacks as stored: one delivery row per state change a message's callback asks for,
written with the change, and what becomes of each attempt to POST it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert
from sqlmodel import Session, col, select

from worker.store.models import ApiKey, CallbackDelivery, Line, Message


@dataclass(frozen=True)
class CallbackAddress:
    """Where a message's events go, the secret that signs them, and what every one of them says."""

    url: str
    secret: str
    facts: dict[str, Any]


def add_deliveries(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Keep these deliveries (message_id, state, at) in the flush that changed the states, due now.
    One statement on the flush's own connection: a listener may not add objects to the session."""
    due = [{**row, "attempts": 0, "next_attempt_at": row["at"]} for row in rows]
    session.connection().execute(insert(CallbackDelivery), due)


def callback_wish(session: Session, message_id: int) -> tuple[str | None, str | None]:
    """The message's callback URL and the events it asked for (columns only: safe on a row the
    code cannot otherwise read)."""
    row = session.exec(
        select(Message.callback_url, Message.callback_events).where(Message.id == message_id)
    ).first()
    return (row[0], row[1]) if row else (None, None)


def pending_deliveries(
    engine: Engine, message_id: int
) -> tuple[CallbackAddress | None, list[CallbackDelivery]]:
    """The message's deliveries not yet delivered nor given up, in order, and where they go (None: the
    message has no callback URL, or its key is gone)."""
    with Session(engine) as session:
        pending = list(
            session.exec(
                select(CallbackDelivery)
                .where(
                    CallbackDelivery.message_id == message_id,
                    col(CallbackDelivery.next_attempt_at).is_not(None),
                )
                .order_by(col(CallbackDelivery.id))
            ).all()
        )
        return _address(session, message_id), pending


def _address(session: Session, message_id: int) -> CallbackAddress | None:
    message = session.get(Message, message_id)
    if message is None or not message.callback_url or message.api_key_id is None:
        return None
    key = session.get(ApiKey, message.api_key_id)
    line = session.get(Line, message.line_id)
    if key is None:
        return None
    facts = {
        "message_id": message.id,
        "line": line.phone if line else None,
        "to": message.recipient,
        "metadata": message.meta,
    }
    return CallbackAddress(message.callback_url, key.signing_secret, facts)


def finish_delivery(engine: Engine, delivery_id: int, now: datetime, given_up: str | None = None) -> bool:
    """The delivery was told (or, with a reason, given up): never attempted again. False if it is gone."""
    with Session(engine) as session:
        row = session.get(CallbackDelivery, delivery_id)
        if row is None:
            return False
        row.next_attempt_at = None
        row.attempts += 1
        if given_up:
            row.gave_up_at, row.last_error = now, given_up
        else:
            row.delivered_at = now
        session.add(row)
        session.commit()
        return True


def delivery_failed(engine: Engine, delivery_id: int, error: str, next_at: datetime) -> None:
    """The receiver refused (or did not answer): try again at `next_at`."""
    with Session(engine) as session:
        row = session.get(CallbackDelivery, delivery_id)
        if row is None:
            return
        row.attempts += 1
        row.last_error = error
        row.next_attempt_at = next_at
        session.add(row)
        session.commit()


def lost_deliveries(engine: Engine, due_before: datetime, limit: int) -> list[int]:
    """Messages with a delivery due since before `due_before`: no task took it (its publish was lost)."""
    with Session(engine) as session:
        rows = session.exec(
            select(CallbackDelivery.message_id)
            .where(col(CallbackDelivery.next_attempt_at) < due_before)
            .distinct()
            .limit(limit)
        ).all()
    return [int(r) for r in rows]
