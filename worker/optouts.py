"""The per-line suppression list: recipients who texted STOP are never texted again from that line."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from worker.store.models import OptOut

# The carrier keywords (CTIA): a reply of exactly one of these changes the recipient's consent.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})


def keyword(body: str | None) -> str | None:
    """ "stop" or "start" when a text is one of the keywords (any case, surrounding spaces), else None."""
    word = (body or "").strip().strip(".!").upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    return None


def apply_keyword(session: Session, line_id: int, number: str, body: str | None, source: str) -> str | None:
    """Record the consent change a keyword text makes; returns "stop", "start" or None."""
    change = keyword(body)
    if change == "stop":
        add_opt_out(session, line_id, number, source)
    elif change == "start":
        remove_opt_out(session, line_id, number)
    return change


def list_opt_outs(session: Session, line_id: int) -> list[OptOut]:
    """A line's suppression list, oldest first."""
    return list(session.exec(select(OptOut).where(OptOut.line_id == line_id).order_by(col(OptOut.id))).all())


def is_opted_out(session: Session, line_id: int, number: str) -> bool:
    """True when the recipient must not be texted from this line."""
    query = select(OptOut.id).where(OptOut.line_id == line_id, OptOut.number == number).limit(1)
    return session.exec(query).first() is not None


def opted_out_numbers(session: Session, line_id: int, numbers: Iterable[str]) -> set[str]:
    """Those of the numbers that must not be texted from this line (one query)."""
    wanted = sorted(set(numbers))
    if not wanted:
        return set()
    query = select(OptOut.number).where(OptOut.line_id == line_id, col(OptOut.number).in_(wanted))
    return set(session.exec(query).all())


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
