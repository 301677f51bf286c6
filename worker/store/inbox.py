"""Texts of the lines that are not our parts: received (MO), or sent from the provider's own apps
(ZO). Kept once each by the provider's id, which is unique on its line only."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from worker.store.models import ProviderMessageRow


def received_row(session: Session, row_id: int) -> ProviderMessageRow | None:
    """A provider message the outbox keeps, by its own id."""
    return session.get(ProviderMessageRow, row_id)


def provider_message(session: Session, line_id: int, provider_id: str) -> ProviderMessageRow | None:
    """The line's record of a provider message, if it has one."""
    query = select(ProviderMessageRow).where(
        ProviderMessageRow.line_id == line_id, ProviderMessageRow.provider_id == provider_id
    )
    return session.exec(query).first()


def keep_once(session: Session, row: ProviderMessageRow) -> tuple[ProviderMessageRow | None, bool]:
    """Add the row unless the same message is kept already (reported twice at once, by a webhook and
    a sync say); returns the row kept and whether it is this one."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return provider_message(session, row.line_id, row.provider_id), False
    return row, True


def newest_texts(
    session: Session, line_id: int, directions: Sequence[str], limit: int
) -> list[ProviderMessageRow]:
    """The line's newest texts in these directions (MO, ZO), newest first (`outbox inbox`)."""
    return list(
        session.exec(
            select(ProviderMessageRow)
            .where(ProviderMessageRow.line_id == line_id)
            .where(col(ProviderMessageRow.direction).in_(list(directions)))
            .order_by(col(ProviderMessageRow.id).desc())
            .limit(limit)
        ).all()
    )
