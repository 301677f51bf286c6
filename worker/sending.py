"""The send step: claim the next part, call the provider, record what the answer means.

Claim before send, record after: the claim is a compare-and-set on the part's state inside a
transaction that holds the message row, so a second delivery of the same task finds nothing to do.
The provider call happens outside any transaction.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select, update

from worker.dispatch import Outbox, _pending_predecessor_exists, try_dispatch
from worker.hooks import notify_final
from worker.lines import mark_needs_login
from worker.metrics import observe_provider_latency
from worker.optouts import add_opt_out, is_opted_out
from worker.retry import RetryPolicy
from worker.runtime import Runtime
from worker.store.db import transaction
from worker.store.models import Attachment, Line, Part, utcnow
from worker.store.record import Locked, add_event, lock_message, mark_sent, move_part, refresh_message
from worker.store.states import LineState, Source, State
from worker.zipwhip.client import Upload, ZipwhipClient
from worker.zipwhip.errors import Classification, ErrorKind, ProviderError

log = logging.getLogger(__name__)


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


def send_step(runtime: Runtime, message_id: int, token: str) -> str:
    """Run one send task for a message; returns a short summary for Flower (ids only)."""
    outbox = Outbox()
    with transaction(runtime.engine) as session:
        claimed, final_state = _claim(session, runtime, message_id, token, utcnow(), outbox)
    outbox.publish()
    if isinstance(claimed, Claimed):
        started = time.perf_counter()
        outcome = call_provider(runtime.client, claimed)
        observe_provider_latency(runtime.redis, time.perf_counter() - started)
        with transaction(runtime.engine) as session:
            summary, final_state = _record(session, runtime, claimed, outcome, token, utcnow(), outbox)
        outbox.publish()
    else:
        summary = claimed
    if final_state:
        notify_final(runtime.settings.outcome_hook, message_id, final_state)
    return summary


def _label(locked: Locked, part: Part) -> str:
    return f"message {locked.message.id} part {part.position + 1}/{len(locked.parts)}"


def _claim(
    session: Session, runtime: Runtime, message_id: int, token: str, now: datetime, outbox: Outbox
) -> tuple[Claimed | str, str | None]:
    """Claim the message's next part; else say why not (and the state if that made it final)."""
    locked = lock_message(session, message_id)
    if locked is None:
        return f"message {message_id}: not found", None
    part = locked.next_unaccepted()
    if locked.final or part is None:
        return f"message {message_id}: nothing to send ({locked.message.state})", None
    label = _label(locked, part)
    state = State(part.state)
    if state is State.SENDING:
        return _redelivered(session, locked, part, token, now, label), None
    if state is State.UNKNOWN or part.dispatched_at is None:
        return f"{label}: not released for sending ({state.value})", None
    line = session.get(Line, locked.message.line_id)
    assert line is not None
    blocked = _blocked(session, runtime, locked, part, line, now)
    if blocked:
        return f"{label}: {blocked}", locked.newly_final
    claimed = _take_claim(session, locked, part, line, token, now, label)
    return claimed or f"{label}: claimed by another delivery", None


def _redelivered(session: Session, locked: Locked, part: Part, token: str, now: datetime, label: str) -> str:
    """A send task found its part mid-send: if it claimed it itself, its earlier run died mid-call."""
    if part.claim_token != token:
        return f"{label}: already being sent"
    part.unknown_since = now
    part.due_at = now
    move_part(session, locked, part, State.UNKNOWN, Source.SEND, now, description="worker lost mid-send")
    return f"{label}: earlier run lost mid-send, reconciling"


def _blocked(
    session: Session, runtime: Runtime, locked: Locked, part: Part, line: Line, now: datetime
) -> str | None:
    """Why the part may not be sent now (and what was done about it), or None."""
    message = locked.message
    if line.state != LineState.ACTIVE or not line.session_key:
        part.dispatched_at = part.due_at = None  # waits until `outbox line add` logs the line in
        return "waiting: line needs login"
    if message.expires_at is not None and message.expires_at <= now:
        move_part(
            session, locked, part, State.REJECTED, Source.SEND, now, description="expired before sending"
        )
        return "rejected: expired"
    if is_opted_out(session, line.id or 0, message.recipient):
        description = "recipient opted out (texted STOP)"
        move_part(
            session, locked, part, State.REJECTED, Source.SEND, now, code=-1234, description=description
        )
        return "rejected: recipient opted out"
    if _pending_predecessor_exists(session, message, now):
        part.dispatched_at = None
        part.due_at = now
        return "waiting for an earlier message to the same recipient"
    return None


def _take_claim(
    session: Session, locked: Locked, part: Part, line: Line, token: str, now: datetime, label: str
) -> Claimed | None:
    """The compare-and-set: only a released part still waiting can be claimed, and only once."""
    result = session.exec(
        update(Part)
        .where(col(Part.id) == part.id, col(Part.state) == part.state, col(Part.dispatched_at).is_not(None))
        .values(
            state=State.SENDING.value,
            claim_token=token,
            claimed_at=now,
            dispatched_at=None,
            due_at=None,
            attempts=Part.attempts + 1,
        )
    )
    if result.rowcount != 1:
        return None
    session.refresh(part)
    add_event(
        session,
        part,
        part.message_id,
        State.SENDING,
        Source.SEND,
        now,
        description=f"attempt {part.attempts}",
    )
    refresh_message(locked, now)
    return Claimed(
        message_id=part.message_id,
        part_id=part.id or 0,
        label=label,
        kind=part.kind,
        recipient=locked.message.recipient,
        body=part.body,
        session_key=line.session_key or "",
        files=_uploads(session, part.id or 0),
    )


def _uploads(session: Session, part_id: int) -> tuple[Upload, ...]:
    rows = session.exec(
        select(Attachment).where(Attachment.part_id == part_id).order_by(col(Attachment.position))
    )
    return tuple(Upload(a.filename, a.content_type, a.data) for a in rows)


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


def _record(
    session: Session,
    runtime: Runtime,
    claimed: Claimed,
    outcome: Accepted | ProviderError,
    token: str,
    now: datetime,
    outbox: Outbox,
) -> tuple[str, str | None]:
    """Record the provider's answer; returns a summary and the message's state if it just became final."""
    locked = lock_message(session, claimed.message_id)
    assert locked is not None
    part = next(p for p in locked.parts if p.id == claimed.part_id)
    ours = part.claim_token == token and State(part.state) in (State.SENDING, State.UNKNOWN)
    if not ours or (State(part.state) is State.UNKNOWN and not isinstance(outcome, Accepted)):
        return f"{claimed.label}: answer arrived after the part moved on ({part.state})", None
    line = session.get(Line, locked.message.line_id)
    assert line is not None
    if isinstance(outcome, Accepted):
        summary = _accepted(session, runtime, locked, part, line, outcome, now, outbox)
    else:
        summary = _failed(session, runtime, locked, part, line, outcome, now)
    return f"{claimed.label}: {summary}", locked.newly_final


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
) -> str:
    part.error_kind = error.kind.value
    part.error_code = error.code
    part.error_description = error.description
    s = runtime.settings
    if error.classification is Classification.SESSION_INVALID:
        mark_needs_login(session, line.id or 0, now)
        part.attempts -= 1  # not the message's fault: waiting must not use up its attempts
        part.due_at = None
        move_part(session, locked, part, State.QUEUED, Source.SEND, now, description="line needs login")
        return "line needs login; waiting"
    if error.classification is Classification.AMBIGUOUS:
        part.unknown_since = now
        part.due_at = now + timedelta(seconds=s.reconcile_delay_s)
        move_part(session, locked, part, State.UNKNOWN, Source.SEND, now, description=str(error))
        return f"outcome unknown ({error.kind.value}), reconciling"
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
        return "rejected: recipient opted out"
    move_part(
        session, locked, part, State.FAILED, Source.SEND, now, code=error.code, description=error.description
    )
    return f"failed ({error.code})"


def retry_policy(runtime: Runtime) -> RetryPolicy:
    """The retry policy from the settings."""
    s = runtime.settings
    return RetryPolicy(s.send_max_attempts, s.retry_backoff_base_s, s.retry_backoff_max_s)


def _retry_or_fail(
    session: Session, runtime: Runtime, locked: Locked, part: Part, error: ProviderError, now: datetime
) -> str:
    policy = retry_policy(runtime)
    if policy.exhausted(part.attempts):
        description = f"gave up after {part.attempts} attempts: {error.description}"
        move_part(
            session, locked, part, State.FAILED, Source.SEND, now, code=error.code, description=description
        )
        return f"failed after {part.attempts} attempts"
    delay = policy.delay_s(part.attempts, error.retry_after_s)
    part.due_at = now + timedelta(seconds=delay)
    move_part(
        session, locked, part, State.RETRYING, Source.SEND, now, code=error.code, description=str(error)
    )
    return f"retrying in {delay:.1f}s ({error.kind.value})"
