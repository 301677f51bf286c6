"""The send step: claim a batch of messages' next parts, call the provider for all of them at once,
record what each answer means.

Claim before send, record after: the claim takes each message's row lock and moves its part to
sending in one transaction for the whole batch, so a second delivery of the same task finds nothing
to do (or, if it is the same task whose worker died mid-call, settles it through reconciliation).
The provider calls happen outside any transaction, concurrently on the process's provider pool; the
answers are recorded in one transaction. Each message is decided on its own: one text's failure
never holds back another's.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from worker.dispatch import Outbox, try_dispatch, waiting_for_predecessor
from worker.hooks import notify_final
from worker.lines import mark_needs_login
from worker.logs import message_context
from worker.metrics import observe_provider_latencies
from worker.optouts import add_opt_out, opted_out_numbers
from worker.retry import RetryPolicy
from worker.runtime import Runtime
from worker.store.db import transaction
from worker.store.models import Attachment, Line, Part, utcnow
from worker.store.record import Locked, lock_messages, mark_sent, move_part
from worker.store.states import LineState, Source, State
from worker.zipwhip.client import Upload, ZipwhipClient
from worker.zipwhip.errors import Classification, ErrorKind, ProviderError

log = logging.getLogger(__name__)

SUMMARY_DETAIL_MAX = 3  # a batch's summary lists each message up to this many; beyond, it counts


@dataclass(frozen=True)
class Claimed:
    """Everything the provider call needs, read while the claim was taken."""

    message_id: int
    part_id: int
    label: str  # "message 42 part 1/2": what logs and Flower show (no number, no body)
    kind: str
    recipient: str
    body: str
    session_key: str
    files: tuple[Upload, ...]


@dataclass(frozen=True)
class Accepted:
    """The provider took the part."""

    provider_id: str
    fingerprint: str | None


@dataclass(frozen=True)
class Outcome:
    """What one send task did for one message."""

    message_id: int
    summary: str  # "message 42 part 1/1: sent as 123"
    kind: str  # a word to count by: sent, retrying, failed, ...
    final_state: str | None = None  # the message's state if it just became final


def send_step(runtime: Runtime, message_ids: Sequence[int], token: str) -> str:
    """Run one send task for a batch of messages; returns a short summary for Flower (ids only)."""
    outbox = Outbox()
    with transaction(runtime.engine) as session:
        claims, outcomes = claim_all(session, runtime, message_ids, token, utcnow())
    if claims:
        answers = call_all(runtime, claims)
        with transaction(runtime.engine) as session:
            outcomes += record_all(session, runtime, claims, answers, token, utcnow(), outbox)
        outbox.publish()
    for outcome in outcomes:
        with message_context(outcome.message_id):
            log.info("%s", outcome.summary)
        if outcome.final_state:
            notify_final(runtime.settings.outcome_hook, outcome.message_id, outcome.final_state)
    return summarize(outcomes)


def summarize(outcomes: list[Outcome]) -> str:
    """One line for Flower: each message when there are few, counts by outcome when there are many."""
    if len(outcomes) <= SUMMARY_DETAIL_MAX:
        return "; ".join(o.summary for o in sorted(outcomes, key=lambda o: o.message_id)) or "nothing to do"
    counts = Counter(o.kind for o in outcomes)
    return f"{len(outcomes)} messages: " + ", ".join(f"{n} {kind}" for kind, n in counts.most_common())


def _label(locked: Locked, part: Part) -> str:
    return f"message {locked.message.id} part {part.position + 1}/{len(locked.parts)}"


def claim_all(
    session: Session, runtime: Runtime, message_ids: Sequence[int], token: str, now: datetime
) -> tuple[list[Claimed], list[Outcome]]:
    """Claim each message's next part if it may go now; the others get an outcome saying why not."""
    lockeds = lock_messages(session, message_ids)
    lines = {line.id: line for line in _lines(session, lockeds.values())}
    outcomes = [Outcome(m, f"message {m}: not found", "skipped") for m in message_ids if m not in lockeds]
    ready: list[tuple[Locked, Part]] = []
    for locked in lockeds.values():
        decided = _before_checks(session, locked, token, now)
        if isinstance(decided, Outcome):
            outcomes.append(decided)
        else:
            ready.append((locked, decided))
    stopped = _opted_out(session, [locked for locked, _ in ready])
    behind = waiting_for_predecessor(session, [locked.message.id or 0 for locked, _ in ready], now)
    claims = []
    for locked, part in ready:
        line = lines[locked.message.line_id]
        why = _blocked(session, locked, part, line, now, stopped, behind)
        if why is not None:
            outcomes.append(why)
        else:
            claims.append(_take_claim(session, locked, part, line, token, now))
    return _with_files(session, claims), outcomes


def _lines(session: Session, lockeds: Iterable[Locked]) -> Sequence[Line]:
    line_ids = sorted({locked.message.line_id for locked in lockeds})
    return session.exec(select(Line).where(col(Line.id).in_(line_ids))).all() if line_ids else []


def _before_checks(session: Session, locked: Locked, token: str, now: datetime) -> Part | Outcome:
    """The message's next part if it is released for sending, else what happened instead."""
    message_id = locked.message.id or 0
    part = locked.next_unaccepted()
    if locked.final or part is None:
        return Outcome(
            message_id, f"message {message_id}: nothing to send ({locked.message.state})", "skipped"
        )
    label = _label(locked, part)
    state = State(part.state)
    if state is State.SENDING:
        return _redelivered(session, locked, part, token, now, label)
    if state is State.UNKNOWN or part.dispatched_at is None:
        return Outcome(message_id, f"{label}: not released for sending ({state.value})", "skipped")
    return part


def _redelivered(
    session: Session, locked: Locked, part: Part, token: str, now: datetime, label: str
) -> Outcome:
    """A send task found its part mid-send: if it claimed it itself, its earlier run died mid-call."""
    message_id = locked.message.id or 0
    if part.claim_token != token:
        return Outcome(message_id, f"{label}: already being sent", "skipped")
    part.unknown_since = now
    part.due_at = now
    move_part(session, locked, part, State.UNKNOWN, Source.SEND, now, description="worker lost mid-send")
    return Outcome(message_id, f"{label}: earlier run lost mid-send, reconciling", "unknown")


def _opted_out(session: Session, lockeds: list[Locked]) -> set[tuple[int, str]]:
    """(line id, number) of the recipients among these messages who texted STOP."""
    by_line: dict[int, set[str]] = {}
    for locked in lockeds:
        by_line.setdefault(locked.message.line_id, set()).add(locked.message.recipient)
    return {
        (line_id, n)
        for line_id, numbers in by_line.items()
        for n in opted_out_numbers(session, line_id, numbers)
    }


def _blocked(
    session: Session,
    locked: Locked,
    part: Part,
    line: Line,
    now: datetime,
    stopped: set[tuple[int, str]],
    behind: set[int],
) -> Outcome | None:
    """Why the part may not be sent now (and what was done about it), or None."""
    message = locked.message
    message_id = message.id or 0
    label = _label(locked, part)
    if line.state != LineState.ACTIVE or not line.session_key:
        part.dispatched_at = part.due_at = None  # waits until `outbox line add` logs the line in
        return Outcome(message_id, f"{label}: waiting: line needs login", "waiting")
    if message.expires_at is not None and message.expires_at <= now:
        move_part(
            session, locked, part, State.REJECTED, Source.SEND, now, description="expired before sending"
        )
        return Outcome(message_id, f"{label}: rejected: expired", "rejected", locked.newly_final)
    if (line.id or 0, message.recipient) in stopped:
        description = "recipient opted out (texted STOP)"
        move_part(
            session, locked, part, State.REJECTED, Source.SEND, now, code=-1234, description=description
        )
        return Outcome(message_id, f"{label}: rejected: recipient opted out", "rejected", locked.newly_final)
    if message_id in behind:
        part.dispatched_at = None
        part.due_at = now
        return Outcome(
            message_id, f"{label}: waiting for an earlier message to the same recipient", "waiting"
        )
    return None


def _take_claim(
    session: Session, locked: Locked, part: Part, line: Line, token: str, now: datetime
) -> Claimed:
    """Move the part to sending under this task's token (its rows are locked: nobody else can)."""
    part.claim_token = token
    part.claimed_at = now
    part.dispatched_at = part.due_at = None
    part.attempts += 1
    move_part(session, locked, part, State.SENDING, Source.SEND, now, description=f"attempt {part.attempts}")
    return Claimed(
        message_id=part.message_id,
        part_id=part.id or 0,
        label=_label(locked, part),
        kind=part.kind,
        recipient=locked.message.recipient,
        body=part.body,
        session_key=line.session_key or "",
        files=(),
    )


def _with_files(session: Session, claims: list[Claimed]) -> list[Claimed]:
    """The MMS claims with their files (one query for the batch)."""
    mms = [c.part_id for c in claims if c.kind != "sms"]
    if not mms:
        return claims
    files: dict[int, list[Upload]] = {}
    rows = session.exec(
        select(Attachment).where(col(Attachment.part_id).in_(mms)).order_by(col(Attachment.position))
    )
    for a in rows:
        files.setdefault(a.part_id, []).append(Upload(a.filename, a.content_type, a.data))
    return [replace(c, files=tuple(files.get(c.part_id, ()))) if c.part_id in files else c for c in claims]


def call_all(runtime: Runtime, claims: list[Claimed]) -> list[Accepted | ProviderError]:
    """Send every claimed part, concurrently on the provider pool; answers in the claims' order."""

    def timed(claimed: Claimed) -> tuple[Accepted | ProviderError, float]:
        started = time.perf_counter()
        answer = call_provider(runtime.client, claimed)
        return answer, time.perf_counter() - started

    # A lone text is sent on this thread; a batch fans out over the provider pool.
    results = [timed(claims[0])] if len(claims) == 1 else list(runtime.provider_pool.map(timed, claims))
    observe_provider_latencies(runtime.redis, [seconds for _, seconds in results])
    return [answer for answer, _ in results]


def call_provider(client: ZipwhipClient, claimed: Claimed) -> Accepted | ProviderError:
    """Send one part; every failure comes back as a classified error, never an exception."""
    try:
        if claimed.kind == "sms":
            receipt = client.send_sms(claimed.session_key, claimed.recipient, claimed.body)
            return Accepted(receipt.message_id, receipt.fingerprint)
        mms = client.send_mms(claimed.session_key, claimed.recipient, claimed.body or None, claimed.files)
        return Accepted(mms.message_id, None)
    except ProviderError as error:
        return error
    except Exception as error:  # a bug must not lose the message: treat it as "may have been sent"
        log.exception("unexpected error sending %s", claimed.label)
        return ProviderError(
            ErrorKind.UNPARSEABLE, Classification.AMBIGUOUS, f"unexpected {type(error).__name__}"
        )


def record_all(
    session: Session,
    runtime: Runtime,
    claims: list[Claimed],
    answers: list[Accepted | ProviderError],
    token: str,
    now: datetime,
    outbox: Outbox,
) -> list[Outcome]:
    """Record every answer (one transaction, the messages locked in id order)."""
    lockeds = lock_messages(session, [c.message_id for c in claims])
    lines = {line.id: line for line in _lines(session, lockeds.values())}
    outcomes = []
    for claimed, answer in zip(claims, answers, strict=True):
        locked = lockeds[claimed.message_id]
        line = lines[locked.message.line_id]
        outcomes.append(_record(session, runtime, locked, line, claimed, answer, token, now, outbox))
    return outcomes


def _record(
    session: Session,
    runtime: Runtime,
    locked: Locked,
    line: Line,
    claimed: Claimed,
    answer: Accepted | ProviderError,
    token: str,
    now: datetime,
    outbox: Outbox,
) -> Outcome:
    """Record one answer; the outcome says what it meant."""
    part = next(p for p in locked.parts if p.id == claimed.part_id)
    ours = part.claim_token == token and State(part.state) in (State.SENDING, State.UNKNOWN)
    if not ours or (State(part.state) is State.UNKNOWN and not isinstance(answer, Accepted)):
        summary = f"{claimed.label}: answer arrived after the part moved on ({part.state})"
        return Outcome(claimed.message_id, summary, "late")
    if isinstance(answer, Accepted):
        kind, summary = "sent", _accepted(session, runtime, locked, part, line, answer, now, outbox)
    else:
        kind, summary = _failed(session, runtime, locked, part, line, answer, now)
    return Outcome(claimed.message_id, f"{claimed.label}: {summary}", kind, locked.newly_final)


def _accepted(
    session: Session,
    runtime: Runtime,
    locked: Locked,
    part: Part,
    line: Line,
    accepted: Accepted,
    now: datetime,
    outbox: Outbox,
) -> str:
    first_poll_at = now + timedelta(seconds=runtime.settings.poll_delays_s[0])
    ids = (accepted.provider_id, accepted.fingerprint)
    description = f"accepted as {accepted.provider_id}"
    mark_sent(session, locked, part, ids, now, first_poll_at, Source.SEND, now, description)
    try_dispatch(session, runtime, locked, line, now, outbox)  # the next part, if it may go now
    return f"sent as {accepted.provider_id}"


def _failed(
    session: Session,
    runtime: Runtime,
    locked: Locked,
    part: Part,
    line: Line,
    error: ProviderError,
    now: datetime,
) -> tuple[str, str]:
    """Record a refused or failed send; returns (outcome kind, summary)."""
    part.error_kind = error.kind.value
    part.error_code = error.code
    part.error_description = error.description
    s = runtime.settings
    if error.classification is Classification.SESSION_INVALID:
        mark_needs_login(session, line.id or 0, now)
        part.attempts -= 1  # not the message's fault: waiting must not use up its attempts
        part.due_at = None
        move_part(session, locked, part, State.QUEUED, Source.SEND, now, description="line needs login")
        return "waiting", "line needs login; waiting"
    if error.classification is Classification.AMBIGUOUS:
        part.unknown_since = now
        part.due_at = now + timedelta(seconds=s.reconcile_delay_s)
        move_part(session, locked, part, State.UNKNOWN, Source.SEND, now, description=str(error))
        return "unknown", f"outcome unknown ({error.kind.value}), reconciling"
    if error.classification is Classification.RETRYABLE:
        return _retry_or_fail(session, runtime, locked, part, error, now)
    if error.kind is ErrorKind.OPTED_OUT:
        add_opt_out(session, line.id or 0, locked.message.recipient, source="send:-1234")
        move_part(
            session,
            locked,
            part,
            State.REJECTED,
            Source.SEND,
            now,
            code=error.code,
            description=error.description,
        )
        return "rejected", "rejected: recipient opted out"
    move_part(
        session, locked, part, State.FAILED, Source.SEND, now, code=error.code, description=error.description
    )
    return "failed", f"failed ({error.code})"


def retry_policy(runtime: Runtime) -> RetryPolicy:
    """The retry policy from the settings."""
    s = runtime.settings
    return RetryPolicy(s.send_max_attempts, s.retry_backoff_base_s, s.retry_backoff_max_s)


def _retry_or_fail(
    session: Session, runtime: Runtime, locked: Locked, part: Part, error: ProviderError, now: datetime
) -> tuple[str, str]:
    policy = retry_policy(runtime)
    if policy.exhausted(part.attempts):
        description = f"gave up after {part.attempts} attempts: {error.description}"
        move_part(
            session, locked, part, State.FAILED, Source.SEND, now, code=error.code, description=description
        )
        return "failed", f"failed after {part.attempts} attempts"
    delay = policy.delay_s(part.attempts, error.retry_after_s)
    part.due_at = now + timedelta(seconds=delay)
    move_part(
        session, locked, part, State.RETRYING, Source.SEND, now, code=error.code, description=str(error)
    )
    return "retrying", f"retrying in {delay:.1f}s ({error.kind.value})"
