"""The per-line suppression list: recipients who texted STOP are never texted again from that line."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from worker.store.models import OptOut


def is_opted_out(session: Session, line_id: int, number: str) -> bool:
    """True when the recipient must not be texted from this line."""
    query = select(OptOut.id).where(OptOut.line_id == line_id, OptOut.number == number).limit(1)
    return session.exec(query).first() is not None


def add_opt_out(session: Session, line_id: int, number: str, source: str) -> None:
    """Suppress a recipient on a line (idempotent)."""
    if is_opted_out(session, line_id, number):
        return
    try:
        with session.begin_nested():
            session.add(OptOut(line_id=line_id, number=number, source=source))
    except IntegrityError:  # another worker recorded the same STOP a moment ago
        pass


def remove_opt_out(session: Session, line_id: int, number: str) -> bool:
    """Lift a suppression (the recipient texted START/UNSTOP); True if there was one."""
    row = session.exec(select(OptOut).where(OptOut.line_id == line_id, OptOut.number == number)).first()
    if row is None:
        return False
    session.delete(row)
    return True
