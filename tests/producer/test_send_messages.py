"""`send_messages`: many texts in one call, on SQLite and PostgreSQL. All are recorded or none is;
every problem is named by the text's index; idempotency keys hold within a call and across calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from tests.e2e.test_bad_input import CORPUS, PNG, prepared
from tests.producer.conftest import LINE, OTHER
from worker.infra.runtime import Runtime
from worker.planning import FileInput, PlanningError
from worker.producer.enqueue import MAX_TEXTS_PER_CALL, TextRequest, enqueue, enqueue_many
from worker.store.consent import suppress
from worker.store.db import transaction
from worker.store.models import Attachment, Line, Message, Part, StatusEvent, utcnow


def _text(n: int, **extra: Any) -> dict[str, Any]:
    return {"line": LINE, "to": f"+1206555{n:04d}", "body": f"Your order {n} shipped", **extra}


def _count(runtime: Runtime, table: type) -> int:
    with Session(runtime.engine) as session:
        return int(session.exec(select(func.count()).select_from(table)).one())


def test_many_texts_are_recorded_in_order_like_single_ones(runtime: Runtime) -> None:
    ids = enqueue_many(runtime, [_text(n) for n in range(300)])
    assert len(ids) == 300 and ids == sorted(ids) and len(set(ids)) == 300
    single = enqueue(runtime, LINE, "+12065559999", "one by itself")
    with Session(runtime.engine) as session:
        recipients = session.exec(
            select(Message.recipient).where(col(Message.id).in_(ids)).order_by(Message.id)
        )
        assert list(recipients) == [f"+1206555{n:04d}" for n in range(300)]
        for message_id in (ids[0], ids[-1], single):
            part = session.exec(select(Part).where(Part.message_id == message_id)).one()
            assert (part.state, part.kind, part.due_at is not None) == ("queued", "sms", True)
            events = session.exec(select(StatusEvent).where(StatusEvent.message_id == message_id)).all()
            assert [(e.state, e.source, e.description) for e in events] == [
                ("queued", "enqueue", "planned: sms")
            ]


@pytest.mark.parametrize(("case", "given", "field", "says"), CORPUS, ids=[c[0] for c in CORPUS])
def test_one_bad_text_among_good_ones_is_named_by_index_and_none_is_recorded(
    runtime: Runtime, tmp_path: Path, case: str, given: dict[str, Any], field: str, says: str
) -> None:
    bad = _text(1, **prepared(given, runtime, tmp_path))
    if "files" in bad:
        bad["attachments"] = bad.pop("files")
    with pytest.raises(PlanningError) as caught:
        enqueue_many(runtime, [_text(0), bad, _text(2)])
    assert f"messages[1].{field}" in {p.field for p in caught.value.problems}, caught.value
    assert says in str(caught.value)
    assert not [p for p in caught.value.problems if not p.field.startswith("messages[1].")]
    for table in (Message, Part, Attachment, StatusEvent):
        assert _count(runtime, table) == 0, table


def test_every_bad_text_is_named_at_once(runtime: Runtime) -> None:
    texts = [_text(0, to="12345"), _text(1), {"line": LINE, "body": "no recipient"}, "not a mapping"]
    texts.append(_text(4, colour="blue"))
    with pytest.raises(PlanningError) as caught:
        enqueue_many(runtime, texts)
    named = {p.field: p.message for p in caught.value.problems}
    assert set(named) == {"messages[0].to", "messages[2]", "messages[3]", "messages[4]"}, named
    assert "missing to" in named["messages[2]"] and "must be a mapping" in named["messages[3]"]
    assert "unknown colour" in named["messages[4]"]
    assert _count(runtime, Message) == 0


def test_an_opted_out_recipient_and_an_unknown_line_are_named_by_index(runtime: Runtime) -> None:
    with transaction(runtime.engine) as session:
        line_id = session.exec(select(Line.id).where(Line.phone == "+1" + LINE)).one()
        suppress(session, line_id or 0, "+12065550001", "test", utcnow(), certain=True)
    with pytest.raises(PlanningError) as caught:
        enqueue_many(runtime, [_text(0), _text(1), _text(2, line="+12065550199")])
    named = {p.field: p.message for p in caught.value.problems}
    assert set(named) == {"messages[1].to", "messages[2].line"}, named
    assert "opted out" in named["messages[1].to"] and "unknown line" in named["messages[2].line"]
    assert _count(runtime, Message) == 0


def test_idempotency_keys_hold_within_a_call_and_across_calls(runtime: Runtime) -> None:
    first = enqueue(runtime, LINE, "+12065550001", "Your order 1 shipped", idempotency_key="order-1")
    ids = enqueue_many(
        runtime,
        [
            _text(1, idempotency_key="order-1"),  # seen before, the same text: the earlier message
            _text(2, idempotency_key="order-2"),
            _text(2, idempotency_key="order-2"),  # repeated in this call: the one just above
            _text(2, idempotency_key="order-2", line=OTHER),  # another line: a message of its own
            _text(5),
        ],
    )
    assert ids[0] == first and ids[1] == ids[2] and len({first, ids[1], ids[3], ids[4]}) == 4
    assert _count(runtime, Message) == 4
    assert enqueue_many(runtime, [_text(2, idempotency_key="order-2")]) == [ids[1]]


def test_attachments_land_under_their_own_parts(runtime: Runtime) -> None:
    texts = [
        TextRequest(LINE, "+12065550001", "a photo", [FileInput("a.png", PNG)]),
        TextRequest(LINE, "+12065550002", "no photo"),
        TextRequest(LINE, "+12065550003", "x" * 1500),  # long: an MMS with the text as a .txt file
    ]
    ids = enqueue_many(runtime, texts)
    with Session(runtime.engine) as session:
        files = session.exec(
            select(Part.message_id, Attachment.filename, Attachment.size).join(
                Part, col(Part.id) == Attachment.part_id
            )
        ).all()
    by_message = {message_id: (name, size) for message_id, name, size in files}
    assert set(by_message) == {ids[0], ids[2]}
    assert by_message[ids[0]] == ("a.png", len(PNG)) and by_message[ids[2]][0].endswith(".txt")


def test_an_empty_call_records_nothing_and_a_huge_one_is_refused(runtime: Runtime) -> None:
    assert enqueue_many(runtime, []) == []
    with pytest.raises(PlanningError, match="at most"):
        enqueue_many(runtime, ({"line": LINE, "to": "+12065550001"} for _ in range(MAX_TEXTS_PER_CALL + 1)))
    assert _count(runtime, Message) == 0
