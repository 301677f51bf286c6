"""The per-line suppression list, kept as one consent record per (line, number).

A record is suppressed while `lifted_at` is null. Every change carries the time it happened (the
provider's time of a STOP/START text, ours for everything else) and is applied only when it is
newer than the record's last change: a provider's retry of an old START, or a sync that meets the
texts newest first, can never undo a later STOP. The check and the write are one statement (an
upsert with a condition), so two events racing for one number are ordered by the row's lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import case, literal
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from worker.store.models import OptOut


def suppress(
    session: Session, line_id: int, number: str, source: str, at: datetime, *, certain: bool
) -> bool:
    """Suppress a number on a line as of `at`; returns True when the record changed.

    `certain` is for what cannot be stale: the provider refusing a send to the number (-1234), its
    opted-out status, an operator's hand. Those always suppress (erring towards silence is the
    safe side); a STOP text only when it is newer than the record's last change.
    """
    return _change(session, line_id, number, source, at, lifted=False, certain=certain)


def lift(session: Session, line_id: int, number: str, source: str, at: datetime, *, certain: bool) -> bool:
    """Lift a suppression as of `at` (a START text, or an operator); True when the record changed."""
    return _change(session, line_id, number, source, at, lifted=True, certain=certain)


def _change(
    session: Session, line_id: int, number: str, source: str, at: datetime, *, lifted: bool, certain: bool
) -> bool:
    table = OptOut.__table__  # type: ignore[attr-defined]
    values = {
        "line_id": line_id,
        "number": number,
        "source": source,
        "created_at": at,
        "changed_at": at,
        "lifted_at": at if lifted else None,
    }
    statement = _upsert(session).values(**values)
    newer = table.c.changed_at < statement.excluded.changed_at
    changed_at = case((newer, statement.excluded.changed_at), else_=table.c.changed_at)
    # Provider times may have whole seconds only: at the same moment, a STOP wins and a START loses.
    in_order = newer if lifted else table.c.changed_at <= statement.excluded.changed_at
    upsert = statement.on_conflict_do_update(
        index_elements=["line_id", "number"],
        set_={"source": source, "lifted_at": values["lifted_at"], "changed_at": changed_at},
        where=literal(True) if certain else in_order,
    )
    return session.execute(upsert.returning(table.c.id)).first() is not None


def _upsert(session: Session) -> postgresql.Insert | sqlite.Insert:
    """INSERT ... ON CONFLICT in the session's own dialect (SQLite and PostgreSQL share the shape)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(OptOut)
    return sqlite.insert(OptOut)


def suppressed(session: Session, line_id: int) -> list[OptOut]:
    """A line's suppression list, oldest first."""
    query = select(OptOut).where(OptOut.line_id == line_id, col(OptOut.lifted_at).is_(None))
    return list(session.exec(query.order_by(col(OptOut.id))).all())


def suppressed_numbers(session: Session, line_id: int, numbers: Iterable[str]) -> set[str]:
    """Those of the numbers that must not be texted from this line (one query)."""
    return {number for _, number in suppressed_pairs(session, [(line_id, n) for n in numbers])}


def suppressed_pairs(session: Session, pairs: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
    """Those of the (line id, number) pairs that must not be texted: one query for a batch of many
    lines (the lines and the numbers each narrow it by an index; the pairs are matched here)."""
    wanted = set(pairs)
    if not wanted:
        return set()
    query = select(OptOut.line_id, OptOut.number).where(
        col(OptOut.line_id).in_(sorted({line_id for line_id, _ in wanted})),
        col(OptOut.number).in_(sorted({number for _, number in wanted})),
        col(OptOut.lifted_at).is_(None),
    )
    return {(line_id, number) for line_id, number in session.exec(query).all()} & wanted
