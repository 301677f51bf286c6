"""Lines: logging one in (the password is used once and never stored) and pausing it when its
session key stops working."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select, update

from worker.infra.runtime import Runtime
from worker.planning import PlanningError, Problem, normalize_number
from worker.store.db import transaction
from worker.store.models import Line, utcnow
from worker.store.schedule import resume_lines
from worker.store.states import LineState
from worker.zipwhip.errors import Classification, ProviderError

log = logging.getLogger(__name__)


def login_line(runtime: Runtime, phone: str, username: str | None, password: str) -> Line:
    """Log the line in and let its waiting messages go; raises ProviderError if login fails.

    The key it replaces is logged out: session keys never expire on their own, so a key left
    behind would keep working for whoever holds a copy of it."""
    number = normalize_number(phone, field="line", limits=runtime.limits)
    username = username or number.removeprefix("+1")
    session_key = runtime.client.login(username, password)
    now = utcnow()
    with transaction(runtime.engine) as session:
        line = session.exec(select(Line).where(Line.phone == number)).first() or Line(
            phone=number, username=username
        )
        replaced = line.session_key if line.session_key != session_key else None
        line.username = username
        line.session_key = session_key
        line.state = LineState.ACTIVE
        line.updated_at = now
        session.add(line)
        session.flush()
        resume_lines(session, now, line.id)
    if replaced:
        _log_out(runtime, replaced, number)
    return line


def _log_out(runtime: Runtime, session_key: str, number: str) -> None:
    try:
        runtime.client.logout(session_key)
    except ProviderError as error:  # already dead at the provider is fine; anything else, say so
        if error.classification is not Classification.SESSION_INVALID:
            log.warning("could not log out the replaced session key of %s: %s", number, error)


@dataclass(frozen=True)
class LineLogin:
    """One line to log in (from `outbox line import`); the password is used once, never kept."""

    phone: str
    username: str | None
    password: str = field(repr=False)


@dataclass(frozen=True)
class LoginResult:
    """How logging one line in went: its number (as stored, or as given) and an error, if any."""

    phone: str
    username: str | None
    error: str | None = None


def login_lines(runtime: Runtime, logins: Sequence[LineLogin], concurrency: int = 16) -> list[LoginResult]:
    """Log many lines in at once (each in its own transaction); a result per line, in order. A line
    that fails (a bad number, a refused password) does not stop the others."""

    def one(login: LineLogin) -> LoginResult:
        try:
            line = login_line(runtime, login.phone, login.username, login.password)
        except PlanningError as error:
            return LoginResult(login.phone, login.username, str(error))
        except ProviderError as error:
            return LoginResult(login.phone, login.username, f"login refused: {error.description}")
        return LoginResult(line.phone, line.username)

    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="login") as pool:
        return list(pool.map(one, logins))


def mark_needs_login(session: Session, line_id: int, refused_key: str, now: datetime) -> None:
    """The provider refused the line's session key: pause the line until it logs in again, unless
    the refused key is one the line has already replaced (`outbox line add` logs the old one out
    while calls made with it may still be under way)."""
    line = session.get(Line, line_id)
    if line is not None and line.session_key == refused_key:
        line.state = LineState.NEEDS_LOGIN
        line.session_key = None
        line.updated_at = now


def list_lines(runtime: Runtime) -> list[Line]:
    """Every line, by number."""
    with transaction(runtime.engine) as session:
        return list(session.exec(select(Line).order_by(col(Line.phone))).all())


def set_rates(runtime: Runtime, phones: Sequence[str], rate_per_s: float | None) -> int:
    """Give lines a rate of their own (texts a second across all hosts; 0: unlimited), or back to the
    setting's (None). Returns how many lines were changed; a bad number raises PlanningError."""
    if rate_per_s is not None and rate_per_s < 0:
        raise PlanningError([Problem("rate", f"must be 0 (unlimited) or more, not {rate_per_s}")])
    numbers = [normalize_number(phone, field="line", limits=runtime.limits) for phone in phones]
    with transaction(runtime.engine) as session:
        changed = session.exec(
            update(Line)
            .where(col(Line.phone).in_(numbers))
            .values(rate_per_s=rate_per_s, updated_at=utcnow())
        )
        return changed.rowcount or 0
