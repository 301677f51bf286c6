"""The lines: found by number, logged in, paused when the provider refuses their key, given a rate.

A line's state and session key are written here only; what waited for its login is woken by
`schedule.resume_lines` in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlmodel import Session, col, select, update

from worker.store.models import Line, Message
from worker.store.schedule import resume_lines
from worker.store.states import LineState


def line_of(session: Session, line_id: int) -> Line | None:
    """The line with this id (from the session's identity map when it is loaded already)."""
    return session.get(Line, line_id)


def line_by_number(session: Session, number: str) -> Line | None:
    """The line with this number (E.164), if the outbox knows it."""
    return session.exec(select(Line).where(Line.phone == number)).first()


def lines_by_id(session: Session, line_ids: Iterable[int]) -> list[Line]:
    """These lines (one query for a batch's lines, whatever its size)."""
    ids = sorted(set(line_ids))
    return list(session.exec(select(Line).where(col(Line.id).in_(ids))).all()) if ids else []


def all_lines(session: Session) -> list[Line]:
    """Every line, by number (for `outbox line list`)."""
    return list(session.exec(select(Line).order_by(col(Line.phone))).all())


def log_in(
    session: Session, number: str, username: str, session_key: str, now: datetime
) -> tuple[Line, str | None]:
    """Keep the line's new session key (adding the line if it is new), make it active and wake what
    waited for its login. Returns the line and the key it replaced (to be logged out), if any."""
    line = line_by_number(session, number) or Line(phone=number, username=username)
    replaced = line.session_key if line.session_key != session_key else None
    line.username = username
    line.session_key = session_key
    line.state = LineState.ACTIVE
    line.updated_at = now
    session.add(line)
    session.flush()
    resume_lines(session, now, line.id)
    return line, replaced


def mark_needs_login(session: Session, line_id: int, refused_key: str, now: datetime) -> None:
    """The provider refused the line's session key: pause the line until it logs in again, unless
    the refused key is one the line has already replaced (`outbox line add` logs the old one out
    while calls made with it may still be under way)."""
    line = session.get(Line, line_id)
    if line is not None and line.session_key == refused_key:
        line.state = LineState.NEEDS_LOGIN
        line.session_key = None
        line.updated_at = now


def set_rates(session: Session, numbers: Sequence[str], rate_per_s: float | None, now: datetime) -> int:
    """Give these lines a rate of their own (None: the setting's); returns how many it changed."""
    changed = session.exec(
        update(Line).where(col(Line.phone).in_(numbers)).values(rate_per_s=rate_per_s, updated_at=now)
    )
    return changed.rowcount or 0


def recipients_of(session: Session, line_id: int) -> list[str]:
    """Everyone the line has texted through the outbox (the contacts `outbox sync` may push)."""
    return list(session.exec(select(Message.recipient).where(Message.line_id == line_id).distinct()).all())
