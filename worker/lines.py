"""Lines: logging one in (the password is used once and never stored), many at once, and their
rates. What the store keeps of a line is written by `worker.store.lines`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from worker.infra.runtime import Runtime
from worker.planning import PlanningError, Problem, normalize_number
from worker.store import lines as stored
from worker.store.db import transaction
from worker.store.models import Line, utcnow
from worker.zipwhip.errors import Classification, ProviderError

log = logging.getLogger(__name__)


def login_line(runtime: Runtime, phone: str, username: str | None, password: str) -> Line:
    """Log the line in and let its waiting messages go; raises ProviderError if login fails.

    The key it replaces is logged out: session keys never expire on their own, so a key left
    behind would keep working for whoever holds a copy of it."""
    number = normalize_number(phone, field="line", limits=runtime.limits)
    username = username or number.removeprefix("+1")
    session_key = runtime.client.login(username, password)
    with transaction(runtime.engine) as session:
        line, replaced = stored.log_in(session, number, username, session_key, utcnow())
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


def list_lines(runtime: Runtime) -> list[Line]:
    """Every line, by number."""
    with transaction(runtime.engine) as session:
        return stored.all_lines(session)


def set_rates(runtime: Runtime, phones: Sequence[str], rate_per_s: float | None) -> int:
    """Give lines a rate of their own (texts a second across all hosts; 0: unlimited), or back to the
    setting's (None). Returns how many lines were changed; a bad number raises PlanningError."""
    if rate_per_s is not None and rate_per_s < 0:
        raise PlanningError([Problem("rate", f"must be 0 (unlimited) or more, not {rate_per_s}")])
    numbers = [normalize_number(phone, field="line", limits=runtime.limits) for phone in phones]
    with transaction(runtime.engine) as session:
        return stored.set_rates(session, numbers, rate_per_s, utcnow())
