"""Recording what the provider answered to each send of a batch: the answer is turned into a
`Decision` (`worker.pipeline.decide`) and the decision applied: sent, retrying, unknown (to be reconciled),
waiting for a login, rejected or failed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from worker.infra.runtime import Runtime
from worker.pipeline.decide import Decision, decide_send
from worker.pipeline.dispatch import Outbox, try_dispatch
from worker.pipeline.send.claim import lines_of
from worker.pipeline.send.values import Accepted, Claimed, Outcome
from worker.store.consent import suppress
from worker.store.lines import mark_needs_login
from worker.store.models import Line, Part
from worker.store.record import Locked, lock_messages, mark_sent, move_part
from worker.store.schedule import attempt_not_counted, await_login, retry_at, to_reconcile
from worker.store.states import Source, State
from worker.zipwhip.errors import ProviderError


@dataclass
class _Recording:
    """One transaction's recording of a batch's answers."""

    session: Session
    runtime: Runtime
    now: datetime
    outbox: Outbox


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
    recording = _Recording(session, runtime, now, outbox)
    outcomes = []
    for claimed, answer in zip(claims, answers, strict=True):
        locked = lockeds[claimed.message_id]
        outcomes.append(_record(recording, locked, lines[locked.message.line_id], claimed, answer, token))
    return outcomes


def _record(
    r: _Recording, locked: Locked, line: Line, claimed: Claimed, answer: Accepted | ProviderError, token: str
) -> Outcome:
    """Record one answer; the outcome says what it meant."""
    part = next(p for p in locked.parts if p.id == claimed.part_id)
    ours = part.claim_token == token and State(part.state) in (State.SENDING, State.UNKNOWN)
    if not ours or (State(part.state) is State.UNKNOWN and not isinstance(answer, Accepted)):
        summary = f"{claimed.label}: answer arrived after the part moved on ({part.state})"
        return Outcome(claimed.message_id, summary, "late")
    if isinstance(answer, Accepted):
        kind, summary = "sent", _accepted(r, locked, part, line, answer)
    else:
        kind, summary = _refused(r, locked, part, line, answer, claimed.session_key)
    return Outcome(
        claimed.message_id, f"{claimed.label}: {summary}", kind, locked.newly_final, claimed.priority
    )


def _accepted(r: _Recording, locked: Locked, part: Part, line: Line, accepted: Accepted) -> str:
    ids = (accepted.provider_id, accepted.fingerprint)
    description = f"accepted as {accepted.provider_id}"
    mark_sent(r.session, locked, part, ids, r.now, r.runtime.polls, Source.SEND, r.now, description)
    try_dispatch(r.session, r.runtime, locked, line, r.now, r.outbox)  # the next part, if it may go now
    return f"sent as {accepted.provider_id}"


def _refused(
    r: _Recording, locked: Locked, part: Part, line: Line, error: ProviderError, session_key: str
) -> tuple[str, str]:
    """Apply the decision for a refused or failed send; returns (outcome kind, summary)."""
    part.error_kind = error.kind.value
    part.error_code = error.code
    part.error_description = error.description
    policy = r.runtime.retry_policy
    session, now = r.session, r.now

    def move(state: State, description: str, code: int | None = None) -> None:
        move_part(session, locked, part, state, Source.SEND, now, code=code, description=description)

    match decide_send(error, part.attempts, policy):
        case Decision.AWAIT_LOGIN:
            mark_needs_login(session, line.id or 0, session_key, now)
            attempt_not_counted(part)  # not the message's fault: waiting must not use up its attempts
            await_login(part)
            move(State.QUEUED, "line needs login")
            return "waiting", "line needs login; waiting"
        case Decision.RECONCILE:
            to_reconcile(part, now, r.runtime.settings.reconcile_delay_s)
            move(State.UNKNOWN, str(error))
            return "unknown", f"outcome unknown ({error.kind.value}), reconciling"
        case Decision.RETRY:
            delay = policy.delay_s(part.attempts, error.retry_after_s)
            retry_at(part, now + timedelta(seconds=delay))
            move(State.RETRYING, str(error), error.code)
            return "retrying", f"retrying in {delay:.1f}s ({error.kind.value})"
        case Decision.GIVE_UP:
            move(State.FAILED, f"gave up after {part.attempts} attempts: {error.description}", error.code)
            return "failed", f"failed after {part.attempts} attempts"
        case Decision.OPTED_OUT:
            suppress(session, line.id or 0, locked.message.recipient, "send:-1234", now, certain=True)
            move(State.REJECTED, error.description, error.code)
            return "rejected", "rejected: recipient opted out"
    move(State.FAILED, error.description, error.code)
    return "failed", f"failed ({error.code})"
