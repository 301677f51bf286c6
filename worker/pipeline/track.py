"""Delivery tracking by polling each line's `message/list` (and `message/get`) until a final status
or the horizon."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session

from worker.callbacks import notify_final
from worker.infra.runtime import Runtime
from worker.pipeline.delivery import record_status
from worker.store.db import transaction
from worker.store.lines import line_of, mark_needs_login
from worker.store.models import Part, utcnow
from worker.store.record import Locked, lock_messages, move_part
from worker.store.schedule import await_login_polls, schedule_next_poll, stop_polling
from worker.store.sent import in_flight_with_ids, polls_due, sent_counts
from worker.store.states import LineState, Source, State
from worker.zipwhip.errors import Classification, ProviderError
from worker.zipwhip.results import ProviderMessage

log = logging.getLogger(__name__)

MAX_DUE_PER_POLL = 500  # due parts one line poll takes on (bounds its memory); the rest wait for the next
ORDER_SKEW_S = 2.0  # how far our record times may disagree with the provider's order of creation
RECORD_CHUNK = 100  # messages recorded per transaction
Answers = dict[int, dict[int, ProviderMessage | ProviderError]]  # by message id, then part id


@dataclass(frozen=True)
class Due:
    """A line's parts due for a poll, and where they lie in its newest-first message list."""

    session_key: str = field(repr=False)  # a credential: never in a repr, a log or a traceback
    parts: list[tuple[int, int, str]]  # (part id, message id, provider id), oldest first
    since: datetime  # paging may stop at messages older than this
    skip: int  # our texts surely listed above the newest due one (sent well after it)
    span: int  # our texts from the oldest due one to the skipped ones


def poll_line_step(runtime: Runtime, line_id: int) -> str:
    """Poll every due part of a line at once: pages of `message/list` (newest first) carry the
    statuses of many messages per call; the few not found there are asked for with `message/get`.
    The cost follows the messages in flight, not the history: paging starts below our texts that are
    newer than every due one and stops at the oldest due one, within a budget set by their span."""
    with transaction(runtime.engine) as session:
        due = _due(session, runtime, line_id, utcnow())
    if isinstance(due, str):
        return due
    listed, pages, list_failed = _listed(runtime, due)
    missing = [(part_id, message_id, pid) for part_id, message_id, pid in due.parts if pid not in listed]
    # When message/list itself failed, its error stands for every due text it did not show: each is
    # polled again at its next delay. Asking for them one by one instead multiplied the calls to a
    # provider already failing (up to 500 message/get a poll: a saturated provider then refused them
    # all, and its answers to everything else came later still).
    got = [list_failed] * len(missing) if list_failed else _get_each(runtime, due.session_key, missing)
    fetched: Answers = {}
    for (part_id, message_id, _), answer in zip(missing, got, strict=True):
        fetched.setdefault(message_id, {})[part_id] = answer
    invalid = Classification.SESSION_INVALID  # that one is not a failure: the line is paused for a login
    unanswered = [a for a in got if isinstance(a, ProviderError) and a.classification is not invalid]
    if unanswered:
        log.warning(
            "line %s: %s due texts unanswered, polled again later: %s",
            line_id,
            len(unanswered),
            unanswered[0],
        )
    finals = _record_all(runtime, line_id, listed, fetched, due.session_key)
    for message_id, state in finals:
        notify_final(runtime.settings.outcome_hook, message_id, state)
    gets = 0 if list_failed else len(missing)
    return (
        f"line {line_id}: {len(due.parts)} due, {pages} message/list pages, "
        f"{gets} by message/get, {len(finals)} now final"
    )


def _due(session: Session, runtime: Runtime, line_id: int, now: datetime) -> Due | str:
    """What is due on the line, or why nothing will be polled."""
    line = line_of(session, line_id)
    if line is None:
        return f"line {line_id}: not found"
    if line.state != LineState.ACTIVE or not line.session_key:
        await_login_polls(session, line_id)  # polling resumes when `outbox line add` logs the line in
        return f"line {line_id}: polling waits for the line to log in"
    rows = polls_due(session, line_id, now, MAX_DUE_PER_POLL)
    if not rows:
        return f"line {line_id}: nothing due"
    oldest, newest = rows[0].sent_at or now, rows[-1].sent_at or now
    since_oldest, surely_newer = _sent_since(session, line_id, oldest, newest)
    return Due(
        session_key=line.session_key,
        parts=[(due.part_id, due.message_id, due.provider_id) for due in rows],
        since=oldest - timedelta(seconds=runtime.settings.reconcile_window_s),
        skip=surely_newer,
        span=since_oldest - surely_newer,
    )


def _sent_since(session: Session, line_id: int, oldest: datetime, newest: datetime) -> tuple[int, int]:
    """How many of our texts the line sent since the oldest due one, and how many of those surely
    after the newest (one index range: the recent ones only). Our clock orders texts sent at the
    same moment differently from the provider's (many calls are in flight at once and a batch is
    recorded together): only texts recorded well after the newest due one are surely listed above it."""
    return sent_counts(session, line_id, oldest, newest + timedelta(seconds=ORDER_SKEW_S))


def _listed(runtime: Runtime, due: Due) -> tuple[dict[str, ProviderMessage], int, ProviderError | None]:
    """The line's messages around the due ones, by provider id. Paging starts below the texts surely
    newer than every due one and goes down until every due id is seen, a page is older than
    `since`, or the budget is spent: twice the span (room for texts received or sent by other apps
    in between). What is not found is asked for one by one, unless a page failed (its error is
    returned)."""
    page_size = runtime.settings.poll_page_size
    budget = page_size + 2 * max(due.span, len(due.parts))  # texts to page through at most
    wanted = {provider_id for *_, provider_id in due.parts}
    listed: dict[str, ProviderMessage] = {}
    aim, pages = _Aim(due.skip), 0
    try:
        while aim.covered < budget and pages < 2 * budget // page_size + 2:
            batch = runtime.client.list_messages(due.session_key, start=aim.offset, limit=page_size)
            pages += 1
            listed.update((m.id, m) for m in batch.messages)
            oldest = batch.messages[-1].date_created if batch.messages else None
            if wanted <= listed.keys() or len(batch.messages) < page_size or (oldest and oldest < due.since):
                break
            aim.follow(batch.total, len(batch.messages))
    except ProviderError as error:
        return listed, pages, error
    return listed, pages, None


@dataclass
class _Aim:
    """Where the next page of a newest-first list goes while texts keep landing on top of it.

    Positions are counted from the oldest message, which never moves; `total` in each answer tells
    how far the list grew, so each page is aimed where the covered stretch ends, guessing that as
    many texts arrive before it as before the last one (three quarters as many: an overlap costs a
    little of a page, a gap a whole one). A page that overshot (the line slowed down) is followed
    by one aimed without a guess.
    """

    offset: int
    guess: int = 0
    first: int | None = None  # the first page's newest position
    reached: int | None = None  # the lowest position covered without a gap

    @property
    def covered(self) -> int:
        """Texts paged through without a gap so far."""
        return 0 if self.first is None or self.reached is None else self.first - self.reached

    def follow(self, total: int, count: int) -> None:
        """Aim the next page after a page of `count` texts from a list of `total`."""
        top = total - self.offset  # one past this page's newest position
        if self.reached is not None and top < self.reached:
            self.guess = 0
            self.offset = total - self.reached
            return
        if self.reached is None:
            self.first = top
        else:
            self.guess = 3 * (self.guess + top - self.reached) // 4
        self.reached = top - count
        self.offset = total + self.guess - self.reached


def _get_each(
    runtime: Runtime, session_key: str, parts: list[tuple[int, int, str]]
) -> list[ProviderMessage | ProviderError]:
    """`message/get` for each part: the first alone (if the session key was refused, every other
    call would be refused too, and that one answer stands for all), the rest concurrently on the
    provider pool."""

    def get(part: tuple[int, int, str]) -> ProviderMessage | ProviderError:
        try:
            return runtime.client.get_message(session_key, part[2])
        except ProviderError as error:
            return error

    if not parts:
        return []
    first = get(parts[0])
    if isinstance(first, ProviderError) and first.classification is Classification.SESSION_INVALID:
        return [first] * len(parts)
    return [first, *runtime.provider_pool.map(get, parts[1:])]


def _with_listed(
    session: Session, line_id: int, listed: dict[str, ProviderMessage], fetched: Answers
) -> Answers:
    """The answers fetched one by one, plus a status for every part of ours in flight that the pages
    showed (due or not: it costs nothing)."""
    answers = {message_id: dict(parts) for message_id, parts in fetched.items()}
    if listed:
        for part_id, message_id, provider_id in in_flight_with_ids(session, line_id, listed):
            answers.setdefault(message_id, {}).setdefault(part_id, listed[provider_id])
    return answers


def _record_all(
    runtime: Runtime, line_id: int, listed: dict[str, ProviderMessage], fetched: Answers, session_key: str
) -> list[tuple[int, str]]:
    """Record the answers, a chunk of messages per transaction (locks taken in id order); the first
    one also reads which of the listed messages are ours (a poll is then two transactions, not three)."""
    if not listed and not fetched:
        return []
    with transaction(runtime.engine) as session:
        answers = _with_listed(session, line_id, listed, fetched)
        ordered = sorted(answers)
        finals = _record_chunk(session, runtime, answers, ordered[:RECORD_CHUNK], session_key)
    for start in range(RECORD_CHUNK, len(ordered), RECORD_CHUNK):
        with transaction(runtime.engine) as session:
            chunk = ordered[start : start + RECORD_CHUNK]
            finals += _record_chunk(session, runtime, answers, chunk, session_key)
    return finals


def _record_chunk(
    session: Session, runtime: Runtime, answers: Answers, message_ids: list[int], session_key: str
) -> list[tuple[int, str]]:
    finals = []
    now = utcnow()
    for message_id, locked in lock_messages(session, message_ids).items():
        _record(session, runtime, locked, answers[message_id], session_key, now)
        if locked.newly_final:
            finals.append((message_id, locked.message.state.value))
    return finals


def _record(
    session: Session,
    runtime: Runtime,
    locked: Locked,
    answers: dict[int, ProviderMessage | ProviderError],
    session_key: str,
    now: datetime,
) -> None:
    for part in locked.parts:
        answer = answers.get(part.id or 0)
        if part.state != State.SENT.value or answer is None:
            continue
        if isinstance(answer, ProviderError):
            _poll_failed(session, locked, part, answer, session_key, now)
        elif answer.status_code is not None:
            _apply_status(session, locked, part, answer, now)
        if part.state == State.SENT.value and part.next_poll_at is not None:
            _schedule_next_poll(session, runtime, locked, part, now)


def _apply_status(
    session: Session, locked: Locked, part: Part, answer: ProviderMessage, now: datetime
) -> None:
    assert answer.status_code is not None
    record_status(session, locked, part, answer.status_code, answer.message_status, Source.POLL, now)


def _poll_failed(
    session: Session, locked: Locked, part: Part, error: ProviderError, session_key: str, now: datetime
) -> None:
    if error.classification is Classification.SESSION_INVALID:
        mark_needs_login(session, locked.message.line_id, session_key, now)
        stop_polling(part)


def _schedule_next_poll(
    session: Session, runtime: Runtime, locked: Locked, part: Part, now: datetime
) -> None:
    """Back off between polls; past the horizon the part is unknown (kept visible, no more polls)."""
    if not schedule_next_poll(part, now, runtime.polls):
        description = f"no final status within {runtime.polls.horizon_s / 3600:g} h"
        move_part(session, locked, part, State.UNKNOWN, Source.POLL, now, description=description)
