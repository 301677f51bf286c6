"""Recording what the provider answered to each send of a batch: sent, retrying, unknown (to be
reconciled), waiting for a login, rejected or failed."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from worker.dispatch import Outbox, try_dispatch
from worker.lines import mark_needs_login
from worker.retry import RetryPolicy
from worker.runtime import Runtime
from worker.send.claim import lines_of
from worker.send.values import Accepted, Claimed, Outcome
from worker.store.consent import suppress
from worker.store.models import Line, Part
from worker.store.record import Locked, lock_messages, mark_sent, move_part
from worker.store.schedule import attempt_not_counted, await_login, retry_at, to_reconcile
from worker.store.states import Source, State
from worker.zipwhip.errors import Classification, ErrorKind, ProviderError


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
    lines = {line.id: line for line in lines_of(session, lockeds.values())}
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
        kind, summary = _failed(session, runtime, locked, part, line, answer, claimed.session_key, now)
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
    ids = (accepted.provider_id, accepted.fingerprint)
    description = f"accepted as {accepted.provider_id}"
    mark_sent(session, locked, part, ids, now, runtime.polls, Source.SEND, now, description)
    try_dispatch(session, runtime, locked, line, now, outbox)  # the next part, if it may go now
    return f"sent as {accepted.provider_id}"


def _failed(
    session: Session,
    runtime: Runtime,
    locked: Locked,
    part: Part,
    line: Line,
    error: ProviderError,
    session_key: str,
    now: datetime,
) -> tuple[str, str]:
    """Record a refused or failed send; returns (outcome kind, summary)."""
    part.error_kind = error.kind.value
    part.error_code = error.code
    part.error_description = error.description
    s = runtime.settings
    if error.classification is Classification.SESSION_INVALID:
        mark_needs_login(session, line.id or 0, session_key, now)
        attempt_not_counted(part)  # not the message's fault: waiting must not use up its attempts
        await_login(part)
        move_part(session, locked, part, State.QUEUED, Source.SEND, now, description="line needs login")
        return "waiting", "line needs login; waiting"
    if error.classification is Classification.AMBIGUOUS:
        to_reconcile(part, now, s.reconcile_delay_s)
        move_part(session, locked, part, State.UNKNOWN, Source.SEND, now, description=str(error))
        return "unknown", f"outcome unknown ({error.kind.value}), reconciling"
    if error.classification is Classification.RETRYABLE:
        return _retry_or_fail(session, runtime, locked, part, error, now)
    if error.kind is ErrorKind.OPTED_OUT:
        suppress(session, line.id or 0, locked.message.recipient, "send:-1234", now, certain=True)
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
    retry_at(part, now + timedelta(seconds=delay))
    move_part(
        session, locked, part, State.RETRYING, Source.SEND, now, code=error.code, description=str(error)
    )
    return "retrying", f"retrying in {delay:.1f}s ({error.kind.value})"
