"""The rows writers lock are plain copies whose changes `worker.store.locked_rows` writes itself: only
the columns that changed, before the transaction's next statement and at commit, nothing after a
rollback. Both databases (PostgreSQL writes a batch in one statement, SQLite a row a statement)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, event, update
from sqlmodel import col, select

from tests.store.rows import stored_texts
from worker.store.db import transaction
from worker.store.models import Part, utcnow
from worker.store.record import lock_messages
from worker.store.states import State


def _messages(engine: Engine, count: int) -> list[int]:
    return [message_id for message_id, _ in stored_texts(engine, count)]


def _parts(engine: Engine) -> dict[int, Part]:
    with transaction(engine) as session:
        return {p.message_id: p for p in session.exec(select(Part)).all()}


def test_changes_are_written_at_commit_column_by_column(engine: Engine) -> None:
    ids = _messages(engine, 3)
    now = utcnow()
    with transaction(engine) as session:
        locked = lock_messages(session, ids)
        locked[ids[0]].parts[0].state = State.SENDING
        locked[ids[0]].parts[0].attempts = 1
        locked[ids[1]].parts[0].claimed_at = now
        # a bulk statement of the same transaction sets another column of the same rows: it stays
        session.execute(update(Part).values(poll_count=7), execution_options={"synchronize_session": False})
    parts = _parts(engine)
    assert (parts[ids[0]].state, parts[ids[0]].attempts) == (State.SENDING, 1)
    assert parts[ids[1]].claimed_at is not None and parts[ids[1]].state == State.QUEUED
    assert parts[ids[2]].state == State.QUEUED and parts[ids[2]].attempts == 0
    assert {p.poll_count for p in parts.values()} == {7}


def test_a_statement_sees_the_changes_made_before_it(engine: Engine) -> None:
    ids = _messages(engine, 2)
    with transaction(engine) as session:
        for locked in lock_messages(session, ids).values():
            locked.parts[0].state = State.SENDING
        sending = session.exec(select(Part.message_id).where(col(Part.state) == State.SENDING.value)).all()
        assert sorted(sending) == ids


def test_nothing_is_written_after_a_rollback(engine: Engine) -> None:
    ids = _messages(engine, 1)
    with pytest.raises(RuntimeError), transaction(engine) as session:
        lock_messages(session, ids)[ids[0]].parts[0].state = State.SENDING
        raise RuntimeError("the writer failed")
    assert _parts(engine)[ids[0]].state == State.QUEUED


def test_a_row_changed_twice_in_a_transaction_ends_with_its_last_value(engine: Engine) -> None:
    ids = _messages(engine, 1)
    with transaction(engine) as session:
        part = lock_messages(session, ids)[ids[0]].parts[0]
        part.state = State.SENDING
        session.exec(select(Part.id)).all()  # written here
        part.state = State.UNKNOWN
        part.state = State.SENDING  # back to what was written: nothing more to write
        part.attempts = 2
    stored = _parts(engine)[ids[0]]
    assert (stored.state, stored.attempts) == (State.SENDING, 2)


def test_a_batchs_changes_go_in_one_statement_a_table(engine: Engine) -> None:
    ids = _messages(engine, 5)
    updates: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(statement.split()[1])

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with transaction(engine) as session:
            for locked in lock_messages(session, ids).values():
                locked.parts[0].state = State.SENDING
                locked.message.state = State.SENDING
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert sorted(updates) == ["message", "part"]
