"""The release job (beat, every second): due work moves from the database to the queues.

The database says what is due (`due_at` for sends and reconciliations, `next_poll_at` for polls).
Publishing leases the row: its due time moves `release_lease_s` ahead, so a task the broker loses
(flushed Redis, killed worker) is simply released again when the lease runs out, and a second
delivery of a task finds the claim taken and does nothing.

Sends go out at each line's rate (slots from the shared limiter), in batches of texts whose slots
fall close together: one task per batch is what lets a worker keep the provider busy. The send
queue is kept short: about two release periods of what the workers took in the last one, shared
equally between the lines with work, so that a blast on one line never buries another line's text
under thousands of its own.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import func
from sqlalchemy import select as sa_select  # sqlmodel's select takes at most four columns
from sqlmodel import Session, col, select

from config.celery import RELEASE_EVERY_S
from worker.broker import holds_tasks_for
from worker.constants import (
    POLL_LEASE_KEY,
    RELEASE_QUEUED_KEY,
    SEND_QUEUE,
    TASK_POLL_LINE,
    TASK_RECONCILE,
    TASK_SEND,
)
from worker.dispatch import UNACCEPTED, Outbox, line_rate, send_cost, waiting_for_predecessor
from worker.runtime import Runtime
from worker.store.db import transaction
from worker.store.models import Line, Part, utcnow
from worker.store.record import lock_messages, move_part
from worker.store.schedule import lease, lease_reconcile, release_lost
from worker.store.states import WAITING_STATES, LineState, Source, State

log = logging.getLogger(__name__)

RELEASE_LIMIT = 2000  # reconciliations per run; the rest wait for the next run
OVERFETCH = 4  # due parts looked at per part a line may release (some wait for an earlier one)
LOST_AFTER_S = 5.0  # a send task published this long ago is in the broker, or in a worker's hands
_WAITING = [s.value for s in WAITING_STATES]


@dataclass(frozen=True)
class Slot:
    """A send slot handed to one message: how long until it may go, how much later it may go without
    bunching up with its line's next slot, and its turn on its line."""

    wait_s: float
    slack_s: float
    turn: int
    message_id: int


def batches(slots: Iterable[Slot], size: int) -> list[tuple[list[int], float]]:
    """Group slots into send tasks: in slot order (lines taking turns at equal slots), at most `size`
    texts a task, spanning no more than the slack of any text in it. A task waits for its last slot,
    so no text goes before its own slot; returns (message ids, countdown) per task."""
    grouped: list[tuple[list[int], float]] = []
    current: list[Slot] = []
    slack = 0.0
    for slot in sorted(slots, key=lambda s: (s.wait_s, s.turn)):
        slack = min(slack, slot.slack_s)
        if current and (len(current) >= size or slot.wait_s - current[0].wait_s > slack):
            grouped.append(([s.message_id for s in current], current[-1].wait_s))
            current = []
        if not current:
            slack = slot.slack_s
        current.append(slot)
    if current:
        grouped.append(([s.message_id for s in current], current[-1].wait_s))
    return grouped


def release_due(runtime: Runtime, now: datetime | None = None) -> dict[str, int]:
    """One run of the release job: due sends (at each line's rate), polls and reconciliations."""
    now = now or utcnow()
    outbox = Outbox()
    with transaction(runtime.engine) as session:
        _recover_lost_sends(session, runtime, now)
        sends = _release_sends(session, runtime, now, outbox)
        polls = _release_polls(session, runtime, now, outbox)
        reconciles = _release_reconciles(session, runtime, now, outbox)
    outbox.publish()
    return {"sends": sends, "polls": polls, "reconciles": reconciles}


def _release_sends(session: Session, runtime: Runtime, now: datetime, outbox: Outbox) -> int:
    lines = session.exec(
        select(Line)
        .where(Line.state == LineState.ACTIVE.value)
        .where(
            col(Line.id).in_(
                select(Part.line_id).where(col(Part.state).in_(_WAITING), col(Part.due_at) <= now).distinct()
            )
        )
        .order_by(col(Line.id))
    ).all()
    if not lines:
        return 0
    room, queued = _room(session, runtime)
    share = max(1, room // len(lines)) if room > 0 else 0
    slots = [slot for line in lines for slot in _release_line(session, runtime, line, share, now)]
    for message_ids, countdown in batches(slots, runtime.settings.send_batch_size):
        outbox.add(TASK_SEND, message_ids, countdown)
    runtime.redis.set(RELEASE_QUEUED_KEY, queued + len(slots), ex=60)
    return len(slots)


def _recover_lost_sends(session: Session, runtime: Runtime, now: datetime) -> int:
    """Parts released a while ago whose send tasks the broker no longer has anywhere (Redis restarted
    empty) are due again now, not when their lease runs out, so that sending resumes at once and
    their count stops filling the queue's room. A wrong guess only publishes a task twice, which the
    claim makes harmless."""
    lost = (
        col(Part.dispatched_at) < now - timedelta(seconds=LOST_AFTER_S),
        col(Part.state).in_(_WAITING),
    )
    if session.exec(select(Part.id).where(*lost).limit(1)).first() is None:
        return 0
    if holds_tasks_for(runtime.broker, SEND_QUEUE):
        return 0
    recovered = release_lost(session, now, now - timedelta(seconds=LOST_AFTER_S))
    log.warning("the broker holds no send task: %s released parts are due again", recovered)
    return recovered


def _room(session: Session, runtime: Runtime) -> tuple[int, int]:
    """How many more texts the send queue should take now, and how many it holds (released, not yet
    claimed). The target is twice what the workers took since the previous run, and never below the
    setting: it follows the workers' real pace, however many hosts there are."""
    queued = session.exec(
        select(func.count())
        .select_from(Part)
        .where(col(Part.dispatched_at).is_not(None), col(Part.state).in_(_WAITING))
    ).one()
    previous = runtime.redis.get(RELEASE_QUEUED_KEY)
    taken = max(0, int(previous) - queued) if previous is not None else 0
    target = max(runtime.settings.send_queue_min_depth, 2 * taken)
    return max(0, target - queued), queued


def _release_line(session: Session, runtime: Runtime, line: Line, share: int, now: datetime) -> list[Slot]:
    """Lease up to `share` of the line's due parts (fewer if its rate allows fewer) and give each a slot."""
    rate = line_rate(runtime, line)
    cap = share if rate <= 0 else min(share, math.ceil(rate * RELEASE_EVERY_S) + 1)
    if cap <= 0:
        return []
    candidates = eligible_parts(session, line.id or 0, now, cap)
    healthy = [row for row in candidates if not _poisoned(session, runtime, row, now)]
    costs = [send_cost(runtime, row.kind) for row in healthy]
    waits = runtime.limiter.reserve(line.id or 0, rate, len(healthy), RELEASE_EVERY_S, costs)
    chosen = healthy[: len(waits)]
    leased = lease(session, [row.id for row in chosen], now, runtime.settings.release_lease_s)
    # Going late by a quarter of the line's interval keeps its sends evenly spread.
    slack = (
        runtime.settings.send_batch_window_s
        if rate <= 0
        else min(runtime.settings.send_batch_window_s, 0.25 / rate)
    )
    return [
        Slot(wait, slack, turn, row.message_id)
        for turn, (row, wait) in enumerate(zip(chosen, waits, strict=False))
        if row.id in leased
    ]


class Candidate(NamedTuple):
    """A due part the release job may lease."""

    id: int
    message_id: int
    position: int
    releases: int
    due_at: datetime
    kind: str


def eligible_parts(session: Session, line_id: int, now: datetime, limit: int) -> list[Candidate]:
    """Due parts of a line whose turn it is, oldest first: the first unaccepted part of their
    message, and their message the oldest unaccepted one to its recipient (so a recipient gets
    texts in enqueue order).

    The cost follows `limit`, not the backlog: the oldest due parts come from the index in order
    (one range per waiting state), and only those are checked for turns, in two queries.
    """
    wanted = limit * OVERFETCH
    rows: list[Candidate] = []
    for state in _WAITING:
        rows += [
            Candidate(*row)
            for row in session.execute(
                sa_select(
                    col(Part.id),
                    col(Part.message_id),
                    col(Part.position),
                    col(Part.releases),
                    col(Part.due_at),
                    col(Part.kind),
                )
                .where(col(Part.line_id) == line_id, col(Part.state) == state, col(Part.due_at) <= now)
                .order_by(col(Part.due_at), col(Part.id))
                .limit(wanted)
            ).all()
        ]
    rows = sorted(rows, key=lambda row: (row.due_at, row.id))[:wanted]
    behind = waiting_for_predecessor(session, [row.message_id for row in rows], now)
    out_of_turn = _behind_an_earlier_part(session, [row for row in rows if row.position > 0])
    return [row for row in rows if row.message_id not in behind and row.id not in out_of_turn][:limit]


def _behind_an_earlier_part(session: Session, later_parts: list[Candidate]) -> set[int]:
    """Those of these parts whose message has an earlier part not accepted yet (parts go in order)."""
    if not later_parts:
        return set()
    position = {row.message_id: row.position for row in later_parts}
    pending = {
        (message_id, part_position)
        for message_id, part_position, state in session.execute(
            select(Part.message_id, Part.position, Part.state).where(
                col(Part.message_id).in_(sorted(position))
            )
        ).all()
        if state in UNACCEPTED
    }
    return {row.id for row in later_parts if any((row.message_id, p) in pending for p in range(row.position))}


def _poisoned(session: Session, runtime: Runtime, row: Candidate, now: datetime) -> bool:
    """A part released again and again without ever reaching an outcome fails instead of looping."""
    part_id, message_id, releases = row.id, row.message_id, row.releases
    if releases < runtime.settings.max_releases_per_part:
        return False
    locked = lock_messages(session, [message_id]).get(message_id)
    target = next((p for p in locked.parts if p.id == part_id), None) if locked else None
    if locked is not None and target is not None:
        description = f"gave up: released {releases} times without an outcome"
        move_part(session, locked, target, State.FAILED, Source.SWEEPER, now, description=description)
    return True


def _release_polls(session: Session, runtime: Runtime, now: datetime, outbox: Outbox) -> int:
    """One poll task per line with due parts (it lists the line's messages once for all of them).
    A lease in Redis keeps a second one from being published while the first is on its way; if the
    lease is lost (Redis flushed), a second poll is harmless: statuses are recorded idempotently."""
    line_ids = session.exec(
        select(Part.line_id).where(Part.state == State.SENT.value, col(Part.next_poll_at) <= now).distinct()
    ).all()
    lease_ms = int(runtime.settings.release_lease_s * 1000)
    released = 0
    for line_id in line_ids:
        if runtime.redis.set(f"{POLL_LEASE_KEY}{line_id}", "1", nx=True, px=lease_ms):
            outbox.add(TASK_POLL_LINE, line_id)
            released += 1
    return released


def _release_reconciles(session: Session, runtime: Runtime, now: datetime, outbox: Outbox) -> int:
    parts = session.exec(
        select(Part)
        .where(Part.state == State.UNKNOWN.value, col(Part.provider_id).is_(None), col(Part.due_at) <= now)
        .order_by(col(Part.due_at))
        .limit(RELEASE_LIMIT)
    ).all()
    for part in parts:
        lease_reconcile(part, now, runtime.settings.release_lease_s)
        outbox.add(TASK_RECONCILE, part.message_id)
    return len(parts)
