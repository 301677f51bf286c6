"""The release job (beat, every second): due work moves from the database to the queues.

The database says what is due (`due_at` for sends and reconciliations, `next_poll_at` for polls).
Publishing leases the row: its due time moves `release_lease_s` ahead, so a task the broker loses
(flushed Redis, killed worker) is simply released again when the lease runs out, and a second
delivery of a task finds the claim taken and does nothing.

A run costs what is due, not how many lines exist: one query reads the head of every line's queue
(priority, then age), one probe of the messages in flight checks each head's turn among the texts to
its recipient, one round trip to Redis reserves every line's rate slots, one statement leases. Sends
go out at each line's rate, in batches of texts whose slots fall close together (one task per batch
is what lets a worker keep the provider busy). The send queue is kept short: about two release
periods of what the workers took in the last one, shared equally between the lines with work, so a
blast on one line never buries another line's text under thousands of its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from sqlmodel import Session

from config.celery import RELEASE_EVERY_S
from worker.infra.constants import (
    POLL_LEASE_KEY,
    RELEASE_QUEUED_KEY,
    RELEASE_RUNS_KEY,
    TASK_POLL_LINE,
    TASK_RECONCILE,
)
from worker.infra.ratelimit import Wanted
from worker.infra.runtime import Runtime
from worker.pipeline.dispatch import (
    Outbox,
    Publications,
    Slot,
    forget_publications,
    line_rate,
    publish_sends,
    send_cost,
    slack_s,
)
from worker.pipeline.liveness import held_ids
from worker.pipeline.sweep import recover_dead_workers
from worker.store.db import transaction
from worker.store.models import utcnow
from worker.store.queue import (
    Head,
    behind_an_earlier_part,
    due_heads,
    due_reconciliations,
    lines_to_poll,
    released_before,
    released_unclaimed,
    waiting_behind_earlier,
)
from worker.store.record import lock_messages, move_part
from worker.store.schedule import lease, lease_reconcile, release_held
from worker.store.states import Source, State

log = logging.getLogger(__name__)

RELEASE_LIMIT = 2000  # reconciliations per run; the rest wait for the next run
OVERFETCH = 4  # due parts looked at per part a line may release (some wait for an earlier one)
LOST_AFTER_S = 5.0  # a send task published this long ago is in the broker, or in a worker's hands
POLL_LINES_PER_TASK = 8  # lines one poll task takes on, one after the other
RECONCILE_BATCH = 100  # texts in doubt one reconcile task settles (a line's, with one search)


def release_due(runtime: Runtime, now: datetime | None = None) -> dict[str, int]:
    """One run of the release job: due sends (at each line's rate), polls and reconciliations. What
    it did and how long it took is kept in Redis (the last runs), for metrics and `outbox bench`."""
    started = time.perf_counter()
    counts = _release_due(runtime, now or utcnow())
    run = {**counts, "s": round(time.perf_counter() - started, 4), "at": round(time.time(), 3)}
    with contextlib.suppress(RedisError):
        pipe = runtime.redis.pipeline(transaction=False)
        pipe.lpush(RELEASE_RUNS_KEY, json.dumps(run))
        pipe.ltrim(RELEASE_RUNS_KEY, 0, 99)
        pipe.execute()
    return counts


def _release_due(runtime: Runtime, now: datetime) -> dict[str, int]:
    outbox = Outbox()
    recover_dead_workers(runtime, now)
    journal = Publications.read(runtime.redis)
    with transaction(runtime.engine) as session:
        _recover_lost_sends(session, runtime, now, journal)
        _recover_unpublished(session, runtime, now, journal)
        sends = _release_sends(session, runtime, now, outbox)
        reconciles = _release_reconciles(session, runtime, now, outbox)
        poll_lines = lines_to_poll(session, now, runtime.settings.poll_delays_s[0])
        outbox.journal(runtime.redis)
    polls = _release_polls(runtime, poll_lines, outbox)
    outbox.publish()
    return {"sends": sends, "polls": polls, "reconciles": reconciles}


def _recover_lost_sends(session: Session, runtime: Runtime, now: datetime, journal: Publications) -> int:
    """Parts released a while ago and still unclaimed whose send task is nowhere (not in the broker's
    queue, not in a worker's hands, not about to be published) are due again now, not when their lease
    runs out: Redis restarted empty, or a worker was killed between taking a task from the queue and
    noting it. A wrong guess only publishes a task twice, which the claim makes harmless."""
    suspects = released_before(session, now - timedelta(seconds=LOST_AFTER_S))
    if not suspects:
        return 0
    queued = runtime.broker.send_ids(LOST_AFTER_S)
    if queued is None:  # RabbitMQ: a task is in its queue or a live worker's hands (brokers.AmqpBroker)
        return 0
    lost = suspects - queued - held_ids(runtime.redis, "send") - journal.being_published()
    if not lost:
        return 0
    recovered = release_held(session, sorted(lost), now)
    log.warning("%s released parts whose send task is nowhere are due again", recovered)
    return recovered


def _recover_unpublished(session: Session, runtime: Runtime, now: datetime, journal: Publications) -> int:
    """Sends a process leased and committed but died before publishing (a worker killed mid-run, a
    producer killed right after its commit) are due again now, not when their lease runs out."""
    abandoned = journal.abandoned(LOST_AFTER_S)
    if not abandoned:
        return 0
    recovered = release_held(session, [i for ids in abandoned.values() for i in ids], now)
    forget_publications(runtime.redis, abandoned)
    log.warning("%s sends leased but never published are due again", recovered)
    return recovered


def _release_sends(session: Session, runtime: Runtime, now: datetime, outbox: Outbox) -> int:
    room, queued = _room(session, runtime)
    s = runtime.settings
    heads = due_heads(
        session,
        now,
        default_rate=s.line_rate_per_s,
        horizon_s=RELEASE_EVERY_S,
        per_slot=OVERFETCH,
        unlimited=OVERFETCH * max(room, 1),
    )
    slots = _slots(session, runtime, heads, room, now) if heads and room > 0 else []
    publish_sends(outbox, slots, s.send_batch_size)
    runtime.redis.set(RELEASE_QUEUED_KEY, queued + len(slots), ex=60)
    return len(slots)


def _room(session: Session, runtime: Runtime) -> tuple[int, int]:
    """How many more texts the send queue should take now, and how many it holds (released, not yet
    claimed). The target is twice what the workers took since the previous run, and never below the
    setting: it follows the workers' real pace, however many hosts there are."""
    queued = released_unclaimed(session)
    previous = runtime.redis.get(RELEASE_QUEUED_KEY)
    taken = max(0, int(previous) - queued) if previous is not None else 0
    target = max(runtime.settings.send_queue_min_depth, 2 * taken)
    return max(0, target - queued), queued


def _slots(session: Session, runtime: Runtime, heads: list[Head], room: int, now: datetime) -> list[Slot]:
    """Lease what each line may send now (its share of the room, at its rate) and give each a slot."""
    by_line: dict[int, list[Head]] = defaultdict(list)
    for head in heads:
        by_line[head.line_id].append(head)
    share = max(1, room // len(by_line))
    blocked_messages = waiting_behind_earlier(session, [h.turn for h in heads], now)
    blocked_parts = behind_an_earlier_part(session, heads)
    chosen: dict[int, list[Head]] = {}
    for line_id, line_heads in by_line.items():
        rate = line_rate(runtime, line_heads[0].rate_per_s)
        cap = share if rate <= 0 else min(share, math.ceil(rate * RELEASE_EVERY_S) + 1)
        eligible = [
            h for h in line_heads if h.message_id not in blocked_messages and h.part_id not in blocked_parts
        ]
        chosen[line_id] = [h for h in eligible if not _poisoned(session, runtime, h, now)][:cap]
    wanted = [
        Wanted(line_id, line_rate(runtime, hs[0].rate_per_s), [send_cost(runtime, h.kind) for h in hs])
        for line_id, hs in chosen.items()
        if hs
    ]
    try:
        waits = runtime.limiter.reserve_many(wanted, RELEASE_EVERY_S)
    except RedisError as error:  # no slots without the limiter: nothing goes faster than its rate
        log.warning("the rate limiter is unreachable (%s); nothing released this run", error)
        return []
    going = {line_id: hs[: len(waits.get(line_id, []))] for line_id, hs in chosen.items()}
    leased = lease(
        session, [h.part_id for hs in going.values() for h in hs], now, runtime.settings.release_lease_s
    )
    # A line with more due than one batch is working through a backlog: its sends queue behind the
    # texts of lines that have none, so that a blast never delays another line's lone text.
    backlog = {line_id for line_id, hs in by_line.items() if len(hs) > runtime.settings.send_batch_size}
    return [
        Slot(wait, slack_s(runtime, hs[0].rate_per_s), turn, h.message_id, h.priority, line_id in backlog)
        for line_id, hs in going.items()
        for turn, (h, wait) in enumerate(zip(hs, waits[line_id], strict=False))
        if h.part_id in leased
    ]


def _poisoned(session: Session, runtime: Runtime, head: Head, now: datetime) -> bool:
    """A part released again and again without ever reaching an outcome fails instead of looping."""
    if head.releases < runtime.settings.max_releases_per_part:
        return False
    locked = lock_messages(session, [head.message_id]).get(head.message_id)
    target = next((p for p in locked.parts if p.id == head.part_id), None) if locked else None
    if locked is not None and target is not None:
        description = f"gave up: released {head.releases} times without an outcome"
        move_part(session, locked, target, State.FAILED, Source.SWEEPER, now, description=description)
    return True


def _release_polls(runtime: Runtime, line_ids: Sequence[int], outbox: Outbox) -> int:
    """Poll tasks for the lines due, a few lines a task (each line is listed once for all its due
    parts). A lease per line in Redis (set for all of them in one round trip) keeps a second poll
    from being published while the first is on its way; if the lease is lost (Redis flushed), a
    second poll is harmless: statuses are recorded idempotently."""
    if not line_ids:
        return 0
    lease_ms = int(runtime.settings.release_lease_s * 1000)
    pipe = runtime.redis.pipeline(transaction=False)
    for line_id in line_ids:
        pipe.set(f"{POLL_LEASE_KEY}{line_id}", "1", nx=True, px=lease_ms)
    leased = [line_id for line_id, won in zip(line_ids, pipe.execute(), strict=True) if won]
    for start in range(0, len(leased), POLL_LINES_PER_TASK):
        outbox.add(TASK_POLL_LINE, leased[start : start + POLL_LINES_PER_TASK])
    return len(leased)


def _release_reconciles(session: Session, runtime: Runtime, now: datetime, outbox: Outbox) -> int:
    """Reconcile tasks for the texts in doubt that are due: a line's together (its task searches the
    line's list once for all of them), at most RECONCILE_BATCH a task."""
    parts = due_reconciliations(session, now, RELEASE_LIMIT)
    by_line: dict[int, list[int]] = {}
    for part in parts:
        lease_reconcile(part, now, runtime.settings.release_lease_s)
        by_line.setdefault(part.line_id, []).append(part.message_id)
    for message_ids in by_line.values():
        for start in range(0, len(message_ids), RECONCILE_BATCH):
            outbox.add(TASK_RECONCILE, message_ids[start : start + RECONCILE_BATCH])
    return len(parts)
