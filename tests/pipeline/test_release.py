"""The release job: batches that never send a text before its slot, a send queue kept short and
shared between lines, and turns (a recipient's texts in order) checked for the few parts released,
not the whole backlog. Real Redis and both databases; the broker is this test run's own."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event, update
from sqlmodel import Session, col, select

from tests.e2e.conftest import image
from tests.pipeline.conftest import LINE, OTHER, set_rates
from tests.pipeline.conftest import published as published_tasks
from worker.infra.runtime import Runtime
from worker.pipeline.dispatch import Slot, batches
from worker.pipeline.release import OVERFETCH, release_due
from worker.producer.enqueue import TextRequest, enqueue_many
from worker.store.models import Line, Part, utcnow
from worker.store.queue import Head, behind_an_earlier_part, due_heads, waiting_behind_earlier

slots = st.lists(
    st.builds(
        Slot,
        wait_s=st.floats(0, 1),
        slack_s=st.sampled_from([0.0, 0.05, 0.2]),
        turn=st.integers(0, 50),
        message_id=st.integers(1, 10**6),
    ),
    max_size=200,
    unique_by=lambda s: s.message_id,
)


@given(slots, st.integers(1, 40))
def test_batches_hold_every_text_once_and_none_goes_early_or_later_than_its_slack(
    given_slots: list[Slot], size: int
) -> None:
    grouped = batches(given_slots, size)
    by_id = {s.message_id: s for s in given_slots}
    assert sorted(m for ids, _ in grouped for m in ids) == sorted(by_id)
    for ids, countdown in grouped:
        assert 1 <= len(ids) <= size
        for message_id in ids:
            slot = by_id[message_id]
            assert slot.wait_s <= countdown <= slot.wait_s + slot.slack_s + 1e-9


def test_lines_take_turns_when_their_slots_are_equal() -> None:
    blast = [Slot(0.0, 0.2, turn, 100 + turn) for turn in range(10)]
    grouped = batches([*blast, Slot(0.0, 0.2, 0, 1)], size=4)
    assert 1 in grouped[0][0]  # the other line's text is in the first task, not after the blast


def eligible_parts(session: Session, line_id: int, now: datetime, limit: int) -> list[Head]:
    """The line's due parts whose turn it is, in queue order (as the release job reads them)."""
    heads = [
        h
        for h in due_heads(session, now, default_rate=0, horizon_s=1, per_slot=4, unlimited=100)
        if h.line_id == line_id
    ]
    blocked = waiting_behind_earlier(session, [h.turn for h in heads], now)
    later = behind_an_earlier_part(session, heads)
    return [h for h in heads if h.message_id not in blocked and h.part_id not in later][:limit]


def test_an_unlimited_blast_fills_the_queue_only_so_far_and_shares_it(runtime: Runtime) -> None:
    set_rates(runtime, 0.0)
    blast = enqueue_many(runtime, [TextRequest(LINE, f"+1425555{n:04d}", f"blast {n}") for n in range(1500)])
    [other] = enqueue_many(runtime, [TextRequest(OTHER, "+12065550001", "hello")])
    depth = runtime.settings.send_queue_min_depth
    first = release_due(runtime)
    published = published_tasks(runtime)
    assert first["sends"] <= depth // 2 + 1  # two lines with work: each gets half the room
    assert other in published[0]  # the other line's text rides in the first task
    assert max(len(ids) for ids in published) <= runtime.settings.send_batch_size
    assert release_due(runtime)["sends"] <= depth - first["sends"]  # nothing was taken: the queue is full
    assert release_due(runtime)["sends"] == 0
    with Session(runtime.engine) as session:  # the workers take what was queued
        session.execute(
            update(Part)
            .where(col(Part.dispatched_at).is_not(None))
            .values(state="sent", dispatched_at=None, sent_at=utcnow())
        )
        session.commit()
    assert release_due(runtime)["sends"] == 2 * depth  # they took a full queue: the target doubles
    published = [m for ids in published_tasks(runtime) for m in ids]
    assert len(published) == len(set(published)) == 3 * depth and set(published) < {*blast, other}


def test_a_rate_limited_line_gets_a_second_of_slots_per_run(runtime: Runtime) -> None:
    set_rates(runtime, 5.0)
    enqueue_many(runtime, [TextRequest(LINE, f"+1425555{n:04d}", f"text {n}") for n in range(100)])
    started = time.monotonic()
    assert release_due(runtime)["sends"] == 5  # slots 0, 0.2, ... 0.8 s: within the release period
    again = release_due(runtime)["sends"]
    # The next ones are more than a second away: one more comes within reach, and one for each fifth
    # of a second the two runs took (a busy machine).
    assert again <= 1 + int((time.monotonic() - started) * 5), again


def test_a_recipients_later_text_waits_for_the_earlier_one(runtime: Runtime) -> None:
    set_rates(runtime, 0.0)
    texts = [("+12065550001", "first"), ("+12065550002", "other"), ("+12065550001", "second")]
    ids = enqueue_many(runtime, [TextRequest(LINE, to, body) for to, body in texts])
    with Session(runtime.engine) as session:
        line_id = session.exec(select(Line.id).where(Line.phone == "+1" + LINE)).one() or 0
        turns = [head.message_id for head in eligible_parts(session, line_id, utcnow(), 10)]
        assert turns == ids[:2]
        later = [
            head.message_id for head in eligible_parts(session, line_id, utcnow() - timedelta(hours=1), 10)
        ]
        assert later == []  # nothing is due an hour ago


def test_turns_are_checked_for_the_head_of_the_backlog_only(runtime: Runtime) -> None:
    """The turn checks (earlier text to the same recipient, earlier part) bind the few parts a run
    may release, never the backlog: a query over a whole blast once took seconds after it arrived."""
    set_rates(runtime, 5.0)
    enqueue_many(runtime, [TextRequest(LINE, f"+1425555{n:04d}", f"text {n}") for n in range(3000)])
    turn_checks: list[int] = []

    def watch(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if "message.state IN ('queued'" in statement:  # the probe of the messages in flight
            turn_checks.append(len(parameters))

    event.listen(runtime.engine, "before_cursor_execute", watch)
    try:
        assert release_due(runtime)["sends"] == 5
    finally:
        event.remove(runtime.engine, "before_cursor_execute", watch)
    # The line and the recipients of about OVERFETCH x the line's cap of heads, and the time.
    cap = 5 + 2
    assert turn_checks and all(binds <= 2 * OVERFETCH * cap + 10 for binds in turn_checks), turn_checks


def test_a_messages_later_part_waits_for_the_earlier_one(runtime: Runtime) -> None:
    set_rates(runtime, 0.0)
    pictures = [image("png"), image("jpg"), image("gif")]  # two files an MMS: two parts
    [message_id] = enqueue_many(runtime, [TextRequest(LINE, "+12065550001", "Three pictures", pictures)])
    with Session(runtime.engine) as session:
        line_id = session.exec(select(Line.id).where(Line.phone == "+1" + LINE)).one() or 0
        parts = session.exec(
            select(Part).where(Part.message_id == message_id).order_by(col(Part.position))
        ).all()
        assert len(parts) >= 2
        assert [head.part_id for head in eligible_parts(session, line_id, utcnow(), 10)] == [parts[0].id]
        parts[0].state = "sent"
        session.commit()
        assert [head.part_id for head in eligible_parts(session, line_id, utcnow(), 10)] == [parts[1].id]


def test_an_mms_costs_its_line_the_slots_the_setting_says(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"mms_send_cost": 2.0})
    set_rates(runtime, 4.0)
    texts = [TextRequest(LINE, f"+1206555{n:04d}", "a picture", [image("png")]) for n in range(6)]
    enqueue_many(runtime, texts)
    assert release_due(runtime)["sends"] == 2  # slots at 0 and 0.5 s: each MMS holds two quarter-seconds


def test_sends_the_broker_lost_are_released_again_at_once_not_after_their_lease(runtime: Runtime) -> None:
    set_rates(runtime, 0.0)
    ids = enqueue_many(runtime, [TextRequest(LINE, f"+1425555{n:04d}", f"text {n}") for n in range(40)])
    assert release_due(runtime)["sends"] == 40
    later = utcnow() + timedelta(seconds=10)  # still well inside their lease (release_lease_s)
    assert release_due(runtime, later)["sends"] == 0  # the broker holds them: nothing to do
    runtime.redis.flushdb()  # Redis (the broker too) restarted empty: every task gone
    assert release_due(runtime, later)["sends"] == 40
    assert sorted(m for batch in published_tasks(runtime) for m in batch) == ids
    with Session(runtime.engine) as session:
        assert set(session.exec(select(Part.releases)).all()) == {2}
