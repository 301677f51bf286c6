"""The dispatcher: priorities take a line's next slots, a text that may go at once goes at commit, a
release run costs what is due (not the lines that exist), polls of a line are gathered, and a dead
worker's texts come back. Real Redis and both databases; the broker is this test run's own."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine, event, update
from sqlmodel import Session, col, select

from tests.pipeline.conftest import LINE, OTHER, published, published_with_priority, set_rates
from worker.app import app
from worker.infra.constants import TASK_SEND
from worker.infra.runtime import Runtime
from worker.pipeline import dispatch
from worker.pipeline.dispatch import PUBLISHING_KEY, Outbox
from worker.pipeline.liveness import ALIVE_KEY, DEAD_KEY, HELD_KEY, MISSING_KEY, hold
from worker.pipeline.release import release_due
from worker.pipeline.sweep import recover_dead_workers
from worker.producer.enqueue import TextRequest, enqueue, enqueue_many
from worker.store.db import transaction
from worker.store.models import Line, Message, Part, utcnow
from worker.store.queue import lines_to_poll
from worker.store.record import lock_messages
from worker.store.schedule import lease, take_claim
from worker.store.states import Priority


def _texts(count: int, prefix: str = "text", priority: str = "normal", line: str = LINE) -> list[TextRequest]:
    return [TextRequest(line, f"+1425555{n:04d}", f"{prefix} {n}", priority=priority) for n in range(count)]


def _released(runtime: Runtime, ids: list[int]) -> set[int]:
    with Session(runtime.engine) as session:
        query = select(Part.message_id).where(
            col(Part.message_id).in_(ids), col(Part.dispatched_at).is_not(None)
        )
        return set(session.exec(query).all())


class Statements:
    """Counts the statements an engine runs."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.count = engine, 0

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: object) -> None:
        self.count += 1


def test_a_high_text_takes_the_lines_next_slot_ahead_of_a_backlog(runtime: Runtime) -> None:
    set_rates(runtime, 2.0)
    backlog = enqueue_many(runtime, _texts(50))
    assert release_due(runtime)["sends"] == 2  # a second of slots: the backlog's first two
    [urgent] = enqueue_many(
        runtime, [TextRequest(LINE, "+12065550001", "Your code is 4711", priority="high")]
    )
    [bulk] = enqueue_many(runtime, [TextRequest(LINE, "+12065550002", "Our autumn sale", priority="bulk")])
    runtime.redis.delete("outbox:rate:1", "outbox:rate:2")  # the next second's slots are free
    release_due(runtime)
    tasks = published_with_priority(runtime)
    assert tasks[0] == (0, [urgent])  # first in the broker too: its most urgent list
    assert urgent in _released(runtime, [urgent]) and not _released(runtime, [bulk])
    assert len(_released(runtime, backlog)) == 3  # one more of the backlog; the bulk text waits for it all


def test_one_recipient_gets_texts_in_order_within_a_priority_and_urgent_ones_overtake(
    runtime: Runtime,
) -> None:
    set_rates(runtime, 0.0)
    to = "+12065550009"
    ids = enqueue_many(
        runtime,
        [
            TextRequest(LINE, to, "campaign", priority="bulk"),
            TextRequest(LINE, to, "first", priority="normal"),
            TextRequest(LINE, to, "second", priority="normal"),
            TextRequest(LINE, to, "code", priority="high"),
        ],
    )
    release_due(runtime)
    campaign, first, second, code = ids
    # The code overtakes everything; "first" overtakes the less urgent campaign (which waits for no
    # later text); "second" waits for "first".
    assert _released(runtime, ids) == {code, first, campaign}
    with Session(runtime.engine) as session:
        session.execute(update(Message).where(col(Message.id) == first).values(state="sent"))
        session.commit()
    release_due(runtime)
    assert second in _released(runtime, ids)


def test_a_text_its_idle_line_can_send_goes_to_a_worker_at_commit(dispatching: Runtime) -> None:
    message_id = enqueue(dispatching, LINE, "+12065550001", "Your table is ready")
    assert published(dispatching) == [[message_id]]  # no release run needed
    assert release_due(dispatching)["sends"] == 0  # and the release job does not send it again


def test_at_commit_nothing_overtakes_what_already_waits(dispatching: Runtime) -> None:
    set_rates(dispatching, 1.0)
    ids = enqueue_many(dispatching, _texts(5))  # the first takes the free slot, the rest wait their turn
    assert published(dispatching) == [[ids[0]]]
    later = enqueue(dispatching, LINE, "+12065550001", "after the blast")
    urgent = enqueue(dispatching, LINE, "+12065550002", "Your code is 4711", priority="high")
    assert later not in _released(dispatching, [later])
    assert urgent in _released(dispatching, [urgent])  # more urgent than all that waits: it goes
    assert [urgent] in published(dispatching)


def test_at_commit_a_recipients_second_text_waits_for_the_first(dispatching: Runtime) -> None:
    first, second = enqueue_many(
        dispatching, [TextRequest(LINE, "+12065550001", "one"), TextRequest(LINE, "+12065550001", "two")]
    )
    assert _released(dispatching, [first, second]) == {first}


def test_a_call_over_many_lines_dispatches_the_most_urgent_lines_at_commit_and_leaves_the_rest(
    dispatching: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "AT_COMMIT_LINES", 1)  # 32 in production: one line here stands for many
    normal, high = enqueue_many(
        dispatching,
        [
            TextRequest(OTHER, "+12065550001", "Your order shipped"),
            TextRequest(LINE, "+12065550002", "Your code is 4711", priority="high"),
        ],
    )
    assert published(dispatching) == [[high]]  # decided at commit: the line with the urgent text
    assert release_due(dispatching)["sends"] == 1  # the other line's text: the release job's, at once
    assert [normal] in published(dispatching)


def test_a_release_run_costs_the_same_however_many_lines_exist_or_have_work(runtime: Runtime) -> None:
    set_rates(runtime, 0.0)
    enqueue_many(runtime, _texts(3))
    with Statements(runtime.engine) as one_line:
        release_due(runtime)
    with transaction(runtime.engine) as session:  # 300 more lines, 100 of them with a text due
        for n in range(300):
            session.add(
                Line(phone=f"+1555700{n:04d}", username=f"555700{n:04d}", session_key="k:1", state="active")
            )
    enqueue_many(runtime, [TextRequest(f"555700{n:04d}", "+12065550001", "hello") for n in range(100)])
    with Statements(runtime.engine) as many_lines:
        assert release_due(runtime)["sends"] == 100
    assert many_lines.count == one_line.count, (one_line.count, many_lines.count)


def test_texts_sent_a_moment_apart_are_polled_by_one_call(runtime: Runtime) -> None:
    now = utcnow()
    enqueue_many(runtime, _texts(3) + _texts(1, line=OTHER))
    with Session(runtime.engine) as session:
        line_ids = dict(session.exec(select(Line.phone, Line.id)).all())
        for n, part in enumerate(session.exec(select(Part).order_by(col(Part.id))).all()):
            part.state = "sent"
            part.sent_at = now - timedelta(seconds=10 - n)  # LINE: at -10, -9, -8; OTHER: -7
            part.next_poll_at = part.sent_at + timedelta(seconds=5)
        session.commit()
    with Session(runtime.engine) as session:
        # Every part is due. LINE sent nothing for 8 s, OTHER for 7: quiet for 5 s, both are polled.
        assert sorted(lines_to_poll(session, now, 5.0)) == sorted(line_ids.values())
        # Asked for 9 quiet seconds: LINE's oldest is 5 s overdue and its last text 8 s old; not yet.
        assert lines_to_poll(session, now, 9.0) == []
    assert release_due(runtime)["polls"] == 2
    assert release_due(runtime)["polls"] == 0  # leased: no second poll while the first is on its way


def _claimed_by(runtime: Runtime, message_ids: list[int], worker: str) -> None:
    with transaction(runtime.engine) as session:
        for locked in lock_messages(session, message_ids).values():
            part = locked.parts[0]
            take_claim(part, "task-1", worker, utcnow())
            part.state = locked.message.state = "sending"


def test_a_dead_workers_texts_come_back_and_a_live_one_is_left_alone(runtime: Runtime) -> None:
    set_rates(runtime, 0.0)
    ids = enqueue_many(runtime, _texts(6))
    release_due(runtime)  # all six released to send tasks
    dead, alive = "w1@host/111", "w2@host/222"
    _claimed_by(runtime, ids[:2], dead)
    _claimed_by(runtime, ids[2:3], alive)
    hold(runtime.redis, dead, "send", ids[3:5])  # it had received these tasks, not started them
    runtime.redis.set(ALIVE_KEY + alive, "222")
    runtime.redis.set(MISSING_KEY + dead, str(utcnow().timestamp() - 60))  # gone for a minute
    assert recover_dead_workers(runtime, utcnow()) == 1
    with Session(runtime.engine) as session:
        parts = {
            p.message_id: p for p in session.exec(select(Part).where(col(Part.message_id).in_(ids))).all()
        }
    assert [parts[i].state for i in ids[:2]] == ["unknown", "unknown"]  # reconciled, not resent
    assert all(parts[i].due_at is not None and parts[i].due_at <= utcnow() for i in ids[:2])
    assert parts[ids[2]].state == "sending"  # the live worker's claim is its own
    assert [parts[i].dispatched_at for i in ids[3:5]] == [None, None]  # due again at once
    assert parts[ids[5]].dispatched_at is not None  # held by nobody we know dead: left leased
    assert runtime.redis.exists(DEAD_KEY + dead) and not runtime.redis.exists(f"{HELD_KEY}send:{dead}")
    assert recover_dead_workers(runtime, utcnow()) == 0  # buried once


def test_a_worker_whose_key_is_gone_only_a_moment_is_not_dead(runtime: Runtime) -> None:
    ids = enqueue_many(runtime, _texts(1))
    _claimed_by(runtime, ids, "w3@host/333")
    assert recover_dead_workers(runtime, utcnow()) == 0  # first seen missing now: not yet
    runtime.redis.set(ALIVE_KEY + "w3@host/333", "333")  # its heartbeat is back (Redis restarted, say)
    assert recover_dead_workers(runtime, utcnow()) == 0
    assert not runtime.redis.exists(MISSING_KEY + "w3@host/333")


def test_priority_names_are_checked() -> None:
    assert Priority.named("HIGH") is Priority.HIGH
    with pytest.raises(ValueError, match="high, normal or bulk"):
        Priority.named("urgent")


def test_sends_being_published_are_not_taken_for_lost(runtime: Runtime) -> None:
    """A big batch takes seconds to publish on a busy machine: its sends are on their way, not lost (a
    second release of them had a line's text go late, next to its line's next one)."""
    set_rates(runtime, 0.0)
    ids = enqueue_many(runtime, _texts(3))
    now = utcnow()
    with transaction(runtime.engine) as session:
        part_ids = list(session.exec(select(Part.id).where(col(Part.message_id).in_(ids))).all())
        assert len(lease(session, [p or 0 for p in part_ids], now, 120)) == 3
        outbox = Outbox()
        outbox.add(TASK_SEND, ids)
        outbox.journal(runtime.redis)
    later = now + timedelta(seconds=30)  # released long enough ago to be suspected, their task nowhere...
    assert release_due(runtime, later)["sends"] == 0  # ...but their publisher is still at it
    outbox.publish()
    assert sorted(m for batch in published(runtime) for m in batch) == ids


def test_a_long_publish_renews_its_journal_entry(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "JOURNAL_REFRESH_EVERY", 2)
    outbox = Outbox()
    for message_id in range(1, 6):
        outbox.add(TASK_SEND, [message_id])
    outbox.journal(runtime.redis)
    [token] = runtime.redis.hkeys(PUBLISHING_KEY)
    runtime.redis.hset(PUBLISHING_KEY, token, json.dumps({"at": 0.0, "ids": [1, 2, 3, 4, 5]}))
    seen = []
    real_send_task = app.send_task

    def send_task(*args: object, **kwargs: object) -> object:
        seen.append(json.loads(runtime.redis.hget(PUBLISHING_KEY, token))["at"])
        return real_send_task(*args, **kwargs)

    monkeypatch.setattr(app, "send_task", send_task)
    assert outbox.publish() == 5
    assert seen[0] == 0.0 and seen[-1] > 0.0  # renewed on the way, never left to look abandoned
    assert runtime.redis.hlen(PUBLISHING_KEY) == 0


def test_sends_leased_but_never_published_are_due_again_within_seconds(runtime: Runtime) -> None:
    set_rates(runtime, 0.0)
    ids = enqueue_many(runtime, _texts(3))
    now = utcnow()
    with transaction(runtime.engine) as session:  # a release run leased them and committed...
        part_ids = list(session.exec(select(Part.id).where(col(Part.message_id).in_(ids))).all())
        assert len(lease(session, [p or 0 for p in part_ids], now, 120)) == 3
        outbox = Outbox()
        outbox.add(TASK_SEND, ids)
        outbox.journal(runtime.redis)  # ...and died before publishing
    entry = json.loads(runtime.redis.hget(PUBLISHING_KEY, next(iter(runtime.redis.hkeys(PUBLISHING_KEY)))))
    entry["at"] -= 60
    runtime.redis.hset(
        PUBLISHING_KEY, mapping={k: json.dumps(entry) for k in runtime.redis.hkeys(PUBLISHING_KEY)}
    )
    assert release_due(runtime, now + timedelta(seconds=1))["sends"] == 3  # not after their 120 s lease
    assert sorted(m for batch in published(runtime) for m in batch) == ids
    assert runtime.redis.hlen(PUBLISHING_KEY) == 0
