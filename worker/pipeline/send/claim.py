"""Claiming a batch: each message's next part, if it may go now, moves to sending under the task's
token; the others get an outcome saying why not (and what was done about it)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlmodel import Session

from worker.pipeline.send.pace import LONGEST_WAIT_S
from worker.pipeline.send.values import Claimed, Outcome
from worker.store.attachments import files_to_send
from worker.store.consent import suppressed_pairs
from worker.store.lines import lines_by_id
from worker.store.models import Line, Part
from worker.store.queue import Turn, waiting_behind_earlier
from worker.store.record import Locked, lock_messages, move_part
from worker.store.schedule import await_login, hand_back, release_again, take_claim, to_reconcile
from worker.store.states import LineState, Priority, Source, State
from worker.zipwhip.client import Upload


class Pace(Protocol):
    """Each text's wait before it may go, by its line's pace (`worker.pipeline.send.pace`)."""

    def waits(self, going: Sequence[tuple[Line, Part]]) -> list[float]: ...


def _label(locked: Locked, part: Part) -> str:
    """What logs and Flower call a part: "message 42 part 1/2, high" (ids and priority only)."""
    priority = Priority(locked.message.priority).label
    return f"message {locked.message.id} part {part.position + 1}/{len(locked.parts)}, {priority}"


def claim_all(
    session: Session,
    message_ids: Sequence[int],
    token: str,
    worker: str,
    now: datetime,
    pace: Pace | None = None,
) -> tuple[list[Claimed], list[Outcome]]:
    """Claim each message's next part if it may go now; the others get an outcome saying why not.
    With a `pace`, each claim also takes its place in its line's pace (or is handed back if late)."""
    lockeds = lock_messages(session, message_ids)
    lines = {line.id: line for line in lines_of(session, lockeds.values())}
    outcomes = [Outcome(m, f"message {m}: not found", "skipped") for m in message_ids if m not in lockeds]
    ready: list[tuple[Locked, Part]] = []
    for locked in lockeds.values():
        decided = _before_checks(session, locked, token, now)
        if isinstance(decided, Outcome):
            outcomes.append(decided)
        else:
            ready.append((locked, decided))
    stopped = _opted_out(session, [locked for locked, _ in ready])
    turns = [
        Turn(m.id or 0, m.line_id, m.recipient, m.priority) for m in (locked.message for locked, _ in ready)
    ]
    behind = waiting_behind_earlier(session, turns, now)
    going: list[tuple[Locked, Part, Line]] = []
    for locked, part in ready:
        line = lines[locked.message.line_id]
        why = _blocked(session, locked, part, line, now, stopped, behind)
        if why is not None:
            outcomes.append(why)
        else:
            going.append((locked, part, line))
    waits = pace.waits([(line, part) for _, part, line in going]) if pace and going else [0.0] * len(going)
    claims = []
    for (locked, part, line), wait in zip(going, waits, strict=True):
        if wait > LONGEST_WAIT_S:
            hand_back(part, now + timedelta(seconds=wait))
            late = f"{_label(locked, part)}: waiting for its line's pace"
            outcomes.append(Outcome(locked.message.id or 0, late, "waiting"))
        else:
            claimed = _take_claim(session, locked, part, line, token, worker, now)
            claims.append(replace(claimed, not_before=time.monotonic() + wait) if wait > 0 else claimed)
    return _with_files(session, claims), outcomes


def lines_of(session: Session, lockeds: Iterable[Locked]) -> Sequence[Line]:
    """The lines of these messages (one query)."""
    return lines_by_id(session, (locked.message.line_id for locked in lockeds))


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
    to_reconcile(part, now)
    move_part(session, locked, part, State.UNKNOWN, Source.SEND, now, description="worker lost mid-send")
    return Outcome(message_id, f"{label}: earlier run lost mid-send, reconciling", "unknown")


def _opted_out(session: Session, lockeds: list[Locked]) -> set[tuple[int, str]]:
    """(line id, number) of the recipients among these messages who texted STOP (one query)."""
    return suppressed_pairs(session, [(lk.message.line_id, lk.message.recipient) for lk in lockeds])


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
        await_login(part)
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
        release_again(part, now)
        return Outcome(
            message_id, f"{label}: waiting for an earlier message to the same recipient", "waiting"
        )
    return None


def _take_claim(
    session: Session, locked: Locked, part: Part, line: Line, token: str, worker: str, now: datetime
) -> Claimed:
    """Move the part to sending under this task's token (its rows are locked: nobody else can)."""
    take_claim(part, token, worker, now)
    move_part(session, locked, part, State.SENDING, Source.SEND, now, description=f"attempt {part.attempts}")
    return Claimed(
        message_id=part.message_id,
        part_id=part.id or 0,
        label=_label(locked, part),
        priority=Priority(locked.message.priority).label,
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
    files = {
        part_id: [Upload(a.filename, a.content_type, a.data) for a in attachments]
        for part_id, attachments in files_to_send(session, mms).items()
    }
    return [replace(c, files=tuple(files.get(c.part_id, ()))) if c.part_id in files else c for c in claims]
