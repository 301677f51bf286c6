"""Handing sends to the workers: the outbox of tasks to publish after commit, the slots and batches
they travel in, and the rules a part must pass before it may go (its line's rate, its place in its
line's queue and among the texts to its recipient).

The release job (`worker.pipeline.release`) publishes most sends; `try_dispatch` publishes the next part of a
message at once when the previous one was just accepted, and the producer dispatches at commit a
text its line can send right away (`worker.producer.enqueue`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import Connection
from sqlmodel import Session

from config.celery import RELEASE_EVERY_S
from worker.infra.broker import send_priority
from worker.infra.brokers import send_route
from worker.infra.constants import REDIS_PREFIX, TASK_SEND
from worker.infra.runtime import Runtime
from worker.store.models import Line
from worker.store.new_messages import LineFacts, NewMessage
from worker.store.queue import Turn, blocked_turns, waiting_behind_earlier, waits_at_least_as_urgent
from worker.store.record import Locked
from worker.store.schedule import lease_part
from worker.store.states import WAITING_STATES, LineState, Priority, State

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    """One task to publish: its name, its argument (ids), when, and how urgent."""

    task: str
    argument: int | list[int]
    countdown_s: float = 0.0
    priority: int | None = None  # the broker's priority for it (None: the queue's default)


PUBLISHING_KEY = REDIS_PREFIX + "publishing"  # hash: token -> the sends a committed transaction will publish
JOURNAL_REFRESH_EVERY = 100  # tasks published between two renewals of a publisher's journal entry


@dataclass
class Outbox:
    """Tasks to publish once the transaction that decided them has committed.

    Between that commit and the publish, the process may die: the sends it had leased would then wait
    for their lease (minutes). `journal` notes them in Redis before the commit and `publish` crosses
    them off after, so the release job finds what a dead process left unpublished within seconds."""

    items: list[Published] = field(default_factory=list)
    _journal: tuple[Redis, str] | None = None

    def add(
        self, task: str, argument: int | list[int], countdown_s: float = 0.0, priority: int | None = None
    ) -> None:
        """Remember a task to publish after commit: an id, or a list of ids."""
        self.items.append(Published(task, argument, countdown_s, priority))

    def journal(self, redis: Redis) -> None:
        """Note the sends to publish, before the transaction that leased them commits."""
        ids = sorted({i for item in self.items if item.task == TASK_SEND for i in _ids(item.argument)})
        if not ids:
            return
        token = uuid.uuid4().hex
        try:
            redis.hset(PUBLISHING_KEY, token, json.dumps({"at": time.time(), "ids": ids}))
            self._journal = (redis, token)
        except RedisError as error:  # they still go out; only a crash before publishing waits for the lease
            log.warning("could not note the sends to publish: %s", error)

    def publish(self, retry: bool = True) -> int:
        """Publish everything remembered; a lost publish is recovered when the lease runs out.
        `retry=False` gives up at once on a broker that is down (a producer must not wait for it)."""
        from worker.app import app

        with app.producer_or_acquire() as producer:
            for n, item in enumerate(self.items, 1):
                if n % JOURNAL_REFRESH_EVERY == 0:
                    self._still_publishing()
                route = send_route(app.conf.broker_url, item.priority) if item.task == TASK_SEND else {}
                try:
                    app.send_task(
                        item.task,
                        args=[item.argument],
                        countdown=item.countdown_s if item.countdown_s > 0.01 else None,
                        producer=producer,
                        retry=retry,
                        **route,
                    )
                except Exception:  # broker down: the row's lease brings it back
                    if not retry:
                        raise
                    log.warning(
                        "could not publish %s for %s; it will be released again", item.task, item.argument
                    )
        published, self.items = len(self.items), []
        if self._journal is not None:
            redis, token = self._journal
            self._journal = None
            with contextlib.suppress(RedisError):
                redis.hdel(PUBLISHING_KEY, token)
        return published

    def _still_publishing(self) -> None:
        """A long publish (thousands of tasks on a busy machine) renews its journal entry's time, so
        that the release job never takes a live publisher's sends for abandoned ones."""
        if self._journal is None:
            return
        redis, token = self._journal
        with contextlib.suppress(RedisError):
            raw = redis.hget(PUBLISHING_KEY, token)
            if raw is not None:
                redis.hset(PUBLISHING_KEY, token, json.dumps({**json.loads(raw), "at": time.time()}))


def _ids(argument: int | list[int]) -> list[int]:
    return [argument] if isinstance(argument, int) else list(argument)


@dataclass(frozen=True)
class Publications:
    """The publishing journal as read once (one release run reads it once): which sends processes
    noted to publish, and when each last said it was still at it, by journal token."""

    entries: dict[str, tuple[float, list[int]]]

    @classmethod
    def read(cls, redis: Redis) -> Publications:
        entries = {}
        for token, raw in redis.hgetall(PUBLISHING_KEY).items():
            name = token.decode() if isinstance(token, bytes) else str(token)
            try:
                entry = json.loads(raw)
                entries[name] = (float(entry["at"]), [int(i) for i in entry["ids"]])
            except (ValueError, KeyError, TypeError):
                entries[name] = (0.0, [])  # unreadable: abandoned, naming nothing
        return cls(entries)

    def being_published(self) -> set[int]:
        """The message ids of the sends some process noted and has not crossed off yet: their tasks
        are on their way (a big batch takes seconds to publish on a busy machine), not lost. Those it
        never publishes are `abandoned`."""
        return {i for _, ids in self.entries.values() for i in ids}

    def abandoned(self, older_than_s: float) -> dict[str, list[int]]:
        """The sends noted more than `older_than_s` ago and never published (their process died
        between commit and publish), by journal token."""
        cutoff = time.time() - older_than_s
        return {token: ids for token, (at, ids) in self.entries.items() if at < cutoff}


def forget_publications(redis: Redis, tokens: Iterable[str]) -> None:
    """Cross journal entries off once what they named is due again."""
    names = list(tokens)
    if names:
        redis.hdel(PUBLISHING_KEY, *names)


@dataclass(frozen=True)
class Slot:
    """A send slot handed to one message: how long until it may go, how much later it may go without
    bunching up with its line's next slot, its turn on its line, its priority, and whether its line has a
    backlog (it then goes in the broker behind the texts of lines that have none)."""

    wait_s: float
    slack_s: float
    turn: int
    message_id: int
    priority: int = Priority.NORMAL
    backlog: bool = False


def batches(slots: Iterable[Slot], size: int) -> list[tuple[list[int], float]]:
    """Group slots into send tasks: in slot order (lines taking turns at equal slots), at most `size`
    texts a task, spanning no more than the slack of any text in it. A task waits for its last slot,
    so no text goes before its own slot; returns (message ids, countdown) per task."""
    return [([s.message_id for s in group], group[-1].wait_s) for group in _groups(slots, size)]


def _groups(slots: Iterable[Slot], size: int) -> list[list[Slot]]:
    grouped: list[list[Slot]] = []
    current: list[Slot] = []
    slack = 0.0
    for slot in sorted(slots, key=lambda s: (s.wait_s, s.turn)):
        slack = min(slack, slot.slack_s)
        if current and (len(current) >= size or slot.wait_s - current[0].wait_s > slack):
            grouped.append(current)
            current = []
        if not current:
            slack = slot.slack_s
        current.append(slot)
    if current:
        grouped.append(current)
    return grouped


def publish_sends(outbox: Outbox, slots: Iterable[Slot], size: int) -> None:
    """Add a send task per batch of slots, as urgent in the broker as its most urgent text."""
    for group in _groups(slots, size):
        priority = min(send_priority(Priority(s.priority), s.backlog) for s in group)
        outbox.add(TASK_SEND, [s.message_id for s in group], group[-1].wait_s, priority)


def line_rate(runtime: Runtime, own_rate: float | None) -> float:
    """A line's own rate if it has one, else the setting (0: unlimited)."""
    return own_rate if own_rate is not None else runtime.settings.line_rate_per_s


def send_cost(runtime: Runtime, kind: str) -> float:
    """How many of its line's rate slots a part takes: an SMS one, an MMS the setting."""
    return runtime.settings.mms_send_cost if kind != "sms" else 1.0


def slack_s(runtime: Runtime, own_rate: float | None) -> float:
    """How much later than its slot a text may go to share a task: going late by at most a quarter of
    its line's interval keeps the line's sends evenly spread."""
    rate = line_rate(runtime, own_rate)
    window = runtime.settings.send_batch_window_s
    return window if rate <= 0 else min(window, 0.25 / rate)


def try_dispatch(
    session: Session, runtime: Runtime, locked: Locked, line: Line, now: datetime, outbox: Outbox
) -> bool:
    """Publish the message's next part at once if it is its turn and the line has a slot free now."""
    part = locked.next_unaccepted()
    message = locked.message
    if part is None or State(part.state) not in WAITING_STATES or part.dispatched_at is not None:
        return False
    if line.state != LineState.ACTIVE or (part.due_at is not None and part.due_at > now):
        return False
    if message.send_at and message.send_at > now:
        return False
    turn = Turn(message.id or 0, message.line_id, message.recipient, message.priority)
    if waiting_behind_earlier(session, [turn], now):
        return False
    cost = [send_cost(runtime, part.kind)]
    rate = line_rate(runtime, line.rate_per_s)
    try:
        waits = runtime.limiter.reserve(line.id or 0, rate, 1, RELEASE_EVERY_S, cost)
    except RedisError:  # an answer being recorded must not fail for it: the release job sends it
        return False
    if not waits:
        return False
    lease_part(part, now, runtime.settings.release_lease_s)
    slot = Slot(waits[0], 0.0, 0, message.id or 0, message.priority)
    publish_sends(outbox, [slot], 1)
    return True


# Lines one producer call dispatches at commit. Deciding costs a few queries and a Redis round trip a
# line, inside the producer's transaction (a call over 1,000 lines spent seconds there); the release
# job decides for every line in a few set-based queries and sends the other lines' texts within a second.
AT_COMMIT_LINES = 32

# Later than any message yet recorded: new messages are not in the database when their turn is checked.
NOT_YET_RECORDED = 2**62


def dispatch_at_commit(
    runtime: Runtime, connection: Connection, items: Sequence[NewMessage], line: LineFacts, now: datetime
) -> dict[int, float]:
    """Which of these new messages of one line go straight to a worker once they are recorded, and
    their slots' waits (by index): those due now that are more urgent than everything already
    waiting on the line, not behind an earlier text to their recipient (recorded or in this call),
    as far as the line's rate has slots free, one batch at most (the release job takes the rest)."""
    if not line.can_send:
        return {}
    priorities = {
        m.priority for m in items if m.due(now) <= now and not Backlogs.known(line.line_id, m.priority)
    }
    behind_queue = {p for p in priorities if waits_at_least_as_urgent(connection, line.line_id, p, now)}
    for p in behind_queue:
        Backlogs.note(line.line_id, p)
    due = [i for i, m in enumerate(items) if m.priority in priorities - behind_queue and m.due(now) <= now]
    turns = [Turn(NOT_YET_RECORDED, line.line_id, items[i].plan.to, items[i].priority) for i in due]
    blocked = blocked_turns(connection, turns, now)
    seen: dict[str, int] = {}
    chosen = []
    for i in due:
        message = items[i]
        to, priority = message.plan.to, message.priority
        earlier = seen.get(to)
        seen[to] = priority if earlier is None else min(earlier, priority)
        turn = Turn(NOT_YET_RECORDED, line.line_id, to, priority)
        if turn in blocked or (earlier is not None and earlier <= priority):
            continue
        chosen.append(i)
        if len(chosen) >= runtime.settings.send_batch_size:
            break
    costs = [send_cost(runtime, items[i].plan.parts[0].kind.value) for i in chosen]
    rate = line_rate(runtime, line.rate_per_s)
    waits = runtime.limiter.reserve(line.line_id, rate, len(chosen), RELEASE_EVERY_S, costs)
    return dict(zip(chosen, waits, strict=False))


@dataclass
class AtCommit:
    """The texts one producer call hands straight to the workers: decided inside its transaction
    (their first parts are written already released), published right after its commit.

    Best effort: without Redis or the broker the call still records its texts, and the release job
    sends them within a second; after such a failure the producer stops trying for a while, so a
    dead Redis never slows every call down."""

    runtime: Runtime
    waits: dict[int, tuple[float, int]] = field(default_factory=dict)  # by item: (wait, priority)
    slots: list[Slot] = field(default_factory=list)
    outbox: Outbox = field(default_factory=Outbox)

    def lease(
        self, connection: Connection, items: Sequence[NewMessage], lines: dict[int, LineFacts], now: datetime
    ) -> dict[int, datetime]:
        """Decide which items go at commit; returns each one's lease (when it is due again if lost)."""
        if not self.runtime.settings.dispatch_at_commit or time.monotonic() < _AtCommitPause.until:
            return {}
        by_line: dict[int, list[int]] = {}
        for i, item in enumerate(items):
            by_line.setdefault(item.line_id, []).append(i)
        # The lines with the most urgent texts first (then in the call's order), at most AT_COMMIT_LINES.
        urgent_first = sorted(by_line, key=lambda line_id: min(items[i].priority for i in by_line[line_id]))
        try:
            for line_id in urgent_first[:AT_COMMIT_LINES]:
                indexes = by_line[line_id]
                chosen = dispatch_at_commit(
                    self.runtime, connection, [items[i] for i in indexes], lines[line_id], now
                )
                self.waits.update(
                    {indexes[n]: (wait, items[indexes[n]].priority) for n, wait in chosen.items()}
                )
        except RedisError as error:
            _AtCommitPause.pause(error)
            self.waits.clear()
        lease_until = now + timedelta(seconds=self.runtime.settings.release_lease_s)
        return dict.fromkeys(self.waits, lease_until)

    def recorded(self, message_ids: Sequence[int]) -> None:
        """The items were recorded under these ids (in order): their slots, noted before the commit."""
        self.slots = [
            Slot(wait, 0.0, n, message_ids[i], priority)
            for n, (i, (wait, priority)) in enumerate(self.waits.items())
        ]
        publish_sends(self.outbox, self.slots, self.runtime.settings.send_batch_size)
        self.outbox.journal(self.runtime.redis)

    def publish(self) -> None:
        """After commit: a task per batch of slots (a failure leaves them to the release job)."""
        if not self.outbox.items:
            return
        try:
            self.outbox.publish(retry=False)
        except Exception as error:  # the broker is down: the release job finds them in the journal
            _AtCommitPause.pause(error)


class Backlogs:
    """Lines this producer saw a backlog on, a moment ago: a blast of single calls then skips the
    check (the release job sends those texts in turn), and only a more urgent text looks again."""

    seen: ClassVar[dict[tuple[int, int], float]] = {}
    FOR_S = 0.5

    @classmethod
    def note(cls, line_id: int, priority: int) -> None:
        cls.seen[(line_id, priority)] = time.monotonic() + cls.FOR_S

    @classmethod
    def forget(cls) -> None:
        """Forget every backlog seen (the process now writes to another database)."""
        cls.seen.clear()

    @classmethod
    def known(cls, line_id: int, priority: int) -> bool:
        until = cls.seen.get((line_id, priority))
        if until is None:
            return False
        if until < time.monotonic():
            del cls.seen[(line_id, priority)]
            return False
        return True


class _AtCommitPause:
    """After Redis or the broker failed a producer, it dispatches nothing at commit for a while."""

    until = 0.0
    PAUSE_S = 30.0

    @classmethod
    def pause(cls, error: Exception) -> None:
        log.warning("dispatch at commit paused for %.0f s: %s", cls.PAUSE_S, error)
        cls.until = time.monotonic() + cls.PAUSE_S
