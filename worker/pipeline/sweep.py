"""The sweeper (run by beat): settles what a dead worker, a lost task or the clock left behind.

- a worker declared dead (its alive key gone; checked by the release job every second): the texts of
  the send tasks it held are due again, and its claims go to reconciliation at once;
- a part claimed for sending longer than the claim timeout (the last resort, for a worker without a
  heartbeat): its worker died mid-call, so its outcome is unknown and it goes to reconciliation
  (never straight back to the queue);
- a message past its `expires_at` that has not gone out: rejected, not sent late;
- a part waiting with no due time on a line that is active again: due now.
Lost tasks for queued, retrying and sent rows need no sweeping: their lease runs out and the
release job publishes them again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlmodel import Session

from worker.callbacks import notify_final
from worker.infra.constants import POLL_LEASE_KEY
from worker.infra.runtime import Runtime
from worker.pipeline.liveness import bury, holders, newly_dead
from worker.store.db import transaction
from worker.store.models import utcnow
from worker.store.queue import claimed_by, claims_of, claims_older_than, expired_unsent
from worker.store.record import lock_messages, move_part
from worker.store.schedule import reconcile_held, release_held, resume_lines, to_reconcile
from worker.store.states import WAITING_STATES, Source, State

log = logging.getLogger(__name__)

SWEEP_LIMIT = 500  # rows per kind per run
_WAITING = [s.value for s in WAITING_STATES]


def sweep(runtime: Runtime, now: datetime | None = None) -> dict[str, int]:
    """One sweeper run; returns what it did, by kind."""
    now = now or utcnow()
    finals: list[tuple[int, str]] = []
    counts = {}
    # A transaction each: the first two hold message locks, the last updates parts in bulk without
    # them, and one transaction holding both could wait on a send task that waits on it.
    with transaction(runtime.engine) as session:
        counts["lost_claims"] = _lost_claims(session, runtime, now)
    with transaction(runtime.engine) as session:
        counts["expired"] = _expired(session, now, finals)
    with transaction(runtime.engine) as session:
        counts["resumed"] = resume_lines(session, now)
    for message_id, state in finals:
        notify_final(runtime.settings.outcome_hook, message_id, state)
    return counts


def _lost_claims(session: Session, runtime: Runtime, now: datetime) -> int:
    cutoff = now - timedelta(seconds=runtime.settings.claim_timeout_s)
    stale = claims_older_than(session, cutoff, SWEEP_LIMIT)
    for locked in lock_messages(session, stale).values():
        part = locked.next_unaccepted()
        if part is None or part.state != State.SENDING.value:
            continue
        to_reconcile(part, now)
        description = "claim expired (worker lost mid-send?); reconciling"
        move_part(session, locked, part, State.UNKNOWN, Source.SWEEPER, now, description=description)
    return len(set(stale))


def _expired(session: Session, now: datetime, finals: list[tuple[int, str]]) -> int:
    expired = expired_unsent(session, now, SWEEP_LIMIT)
    for message_id, locked in lock_messages(session, expired).items():
        part = locked.next_unaccepted()
        if part is None or part.state not in _WAITING:
            continue
        move_part(
            session, locked, part, State.REJECTED, Source.SWEEPER, now, description="expired before sending"
        )
        if locked.newly_final:
            finals.append((message_id, locked.message.state))
    return len(set(expired))


def recover_dead_workers(runtime: Runtime, now: datetime) -> int:
    """Declare dead the workers whose alive key has been gone a while, and bring back what they held:
    texts of send tasks they had not started are due now; texts they had claimed are reconciled with
    the provider at once (asked before anything is sent again). Returns how many workers died."""
    with transaction(runtime.engine) as session:
        claimants = claims_of(session)
    dead = newly_dead(runtime.redis, claimants | holders(runtime.redis), _confirm_s(runtime))
    for name in dead:
        held = bury(runtime.redis, name)  # the tombstone first: from now on it may not send
        with transaction(runtime.engine) as session:
            released = release_held(session, held["send"], now)
            reconcile_held(session, held["reconcile"], now)
        if held["poll"]:  # its polls' leases go: the next release polls those lines again
            runtime.redis.delete(*(f"{POLL_LEASE_KEY}{line_id}" for line_id in held["poll"]))
        with transaction(runtime.engine) as session:
            reconciled = _reconcile_claims_of(session, name, now)
        log.warning(
            "worker %s is dead: %s texts it held are due again, %s it was sending are reconciled",
            name,
            released,
            reconciled,
        )
    return len(dead)


def _confirm_s(runtime: Runtime) -> float:
    """How long a worker's key must stay gone, past its expiry, before the worker is dead: two of its
    beats (a key gone for a moment, Redis restarted empty say, is no death)."""
    return 2 * runtime.settings.worker_liveness_ttl_s / 5


def _reconcile_claims_of(session: Session, worker: str, now: datetime) -> int:
    moved = 0
    for locked in lock_messages(session, claimed_by(session, [worker])).values():
        for part in locked.parts:
            if part.state == State.SENDING.value and part.claimed_by == worker:
                to_reconcile(part, now)
                description = f"worker {worker} died mid-send; reconciling"
                moved += move_part(
                    session, locked, part, State.UNKNOWN, Source.SWEEPER, now, description=description
                )
    return moved
