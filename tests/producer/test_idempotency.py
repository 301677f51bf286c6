"""Idempotency keys, on SQLite and PostgreSQL: the same key with the same request is the same
message; with a different request it is refused (IdempotencyConflict, naming `idempotency_key`) and
nothing is recorded, whether the first request came in an earlier call, earlier in the same call,
or from another producer that won a race for the key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, update
from sqlmodel import Session, select

import worker.producer.enqueue
from tasks import IdempotencyConflict, InvalidMessage
from tests.producer.conftest import LINE
from worker.infra.runtime import Runtime
from worker.planning import FileInput
from worker.producer.enqueue import enqueue, enqueue_many
from worker.store.models import Message, Part
from worker.store.new_messages import LineFacts

TO = "+12065550001"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)  # within the schedule horizon
ASKED: dict[str, Any] = {
    "line": LINE,
    "to": TO,
    "body": "Your order shipped",
    "attachments": [FileInput("a.png", PNG)],
    "idempotency_key": "order-1",
    "metadata": {"order": 1, "tags": ["a", "b"]},
}


def _count(runtime: Runtime) -> int:
    with Session(runtime.engine) as session:
        return int(session.exec(select(func.count()).select_from(Message)).one())


def _send(runtime: Runtime, **asked: Any) -> int:
    request = {**ASKED, **asked}
    line, to, body, files = (request.pop(k) for k in ("line", "to", "body", "attachments"))
    return enqueue(runtime, line, to, body, files, **request)


@pytest.mark.parametrize(
    "changed",
    [
        {"to": "+12065550002"},
        {"body": "Your order shipped!"},
        {"attachments": [FileInput("a.png", PNG + b"\x01")]},
        {"attachments": []},
        {"metadata": {"order": 2, "tags": ["a", "b"]}},
        {"metadata": None},
        {"send_at": SOON},
        {"expires_at": SOON},
    ],
    ids=["to", "body", "file", "no file", "metadata", "no metadata", "send_at", "expires_at"],
)
def test_a_key_reused_for_another_request_is_a_conflict_and_records_nothing(
    runtime: Runtime, changed: dict[str, Any]
) -> None:
    first = _send(runtime)
    with pytest.raises(IdempotencyConflict) as caught:
        _send(runtime, **changed)
    assert [p.field for p in caught.value.problems] == ["idempotency_key"]
    assert f"'order-1' already stands for message {first}, which asked for something else" in str(
        caught.value
    )
    assert _count(runtime) == 1
    with pytest.raises(IdempotencyConflict):  # the same through the many-at-once call, named by index
        enqueue_many(runtime, [{**ASKED, "idempotency_key": "other"}, {**ASKED, **changed}])
    assert _count(runtime) == 1


def test_the_same_request_under_the_same_key_is_the_same_message(runtime: Runtime, tmp_path: Path) -> None:
    soon = SOON - timedelta(days=1)
    first = _send(runtime, send_at=soon)
    picture = tmp_path / "renamed.png"
    picture.write_bytes(PNG)
    same = [
        {"send_at": soon.replace(tzinfo=None)},  # naive is UTC: the same instant
        {"send_at": soon.astimezone(datetime.now().astimezone().tzinfo)},  # another zone, same instant
        {"send_at": soon, "metadata": {"tags": ["a", "b"], "order": 1}},  # keys in another order
        {"send_at": soon, "attachments": [str(picture)]},  # the same bytes from a file of another name
        {"send_at": soon, "to": "(206) 555-0001"},  # the same number, written otherwise
    ]
    for asked in same:
        assert _send(runtime, **asked) == first, asked
    assert enqueue_many(runtime, [{**ASKED, "send_at": soon}]) == [first]
    assert _count(runtime) == 1


def test_a_key_repeated_in_one_call_for_another_request_is_a_conflict_naming_both(runtime: Runtime) -> None:
    texts = [{**ASKED, "idempotency_key": "fresh"}, ASKED, {**ASKED, "body": "Something else"}]
    with pytest.raises(IdempotencyConflict) as caught:
        enqueue_many(runtime, texts)
    assert [str(p) for p in caught.value.problems] == [
        "messages[2].idempotency_key: 'order-1' is also the key of messages[1], which asks for something else"
    ]
    assert _count(runtime) == 0
    ids = enqueue_many(runtime, [*texts[:2], ASKED])  # the same request twice: one message
    assert ids[1] == ids[2] and _count(runtime) == 2


def test_a_conflict_beside_bad_input_is_one_error_naming_both(runtime: Runtime) -> None:
    _send(runtime)
    with pytest.raises(InvalidMessage) as caught:
        enqueue_many(runtime, [{**ASKED, "to": "12"}, {**ASKED, "body": "changed"}])
    assert not isinstance(caught.value, IdempotencyConflict)  # not only a conflict: fix the input first
    assert [p.field for p in caught.value.problems] == ["messages[0].to", "messages[1].idempotency_key"]


def test_a_message_stored_before_digests_matches_any_request_with_its_key(runtime: Runtime) -> None:
    first = _send(runtime)
    with runtime.engine.begin() as connection:
        connection.execute(update(Message).values(request_digest=None))
    assert _send(runtime, body="Something else") == first
    assert _count(runtime) == 1


def test_the_error_is_exported_and_is_an_invalid_message() -> None:
    assert issubclass(IdempotencyConflict, InvalidMessage)


# The race: another producer inserts the key between this one's look-up and its insert (simulated by
# hiding the stored keys from the first look-up); the insert fails on the unique key and all the
# call's texts are looked up again.


@pytest.fixture
def lost_race(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The first look-up misses the stored keys; returns how many look-ups were made."""
    calls: list[int] = []
    real = worker.producer.enqueue.look_up_line

    def late(*args: Any) -> LineFacts | None:
        found = real(*args)
        calls.append(1)
        if len(calls) == 1 and found is not None:
            return LineFacts(found.line_id, found.opted_out, {})
        return found

    monkeypatch.setattr(worker.producer.enqueue, "look_up_line", late)
    return calls


def test_a_lost_race_with_the_same_request_returns_the_winner(runtime: Runtime, lost_race: list[int]) -> None:
    first = enqueue(runtime, LINE, TO, "Your order shipped", idempotency_key="order-1")
    lost_race.clear()
    assert enqueue(runtime, LINE, TO, "Your order shipped", idempotency_key="order-1") == first
    assert len(lost_race) == 2 and _count(runtime) == 1


def test_a_lost_race_with_another_request_is_a_conflict(runtime: Runtime, lost_race: list[int]) -> None:
    enqueue(runtime, LINE, TO, "Your order shipped", idempotency_key="order-1")
    lost_race.clear()
    with pytest.raises(IdempotencyConflict):
        enqueue(runtime, LINE, TO, "Something else", idempotency_key="order-1")
    assert len(lost_race) == 2 and _count(runtime) == 1


def test_a_lost_race_in_a_call_of_many_records_all_or_none(runtime: Runtime, lost_race: list[int]) -> None:
    first = enqueue(runtime, LINE, TO, "Your order shipped", idempotency_key="order-1")
    lost_race.clear()
    new = {"line": LINE, "to": "+12065550003", "body": "A new text"}
    clash = {"line": LINE, "to": TO, "body": "Something else", "idempotency_key": "order-1"}
    with pytest.raises(IdempotencyConflict, match=r"messages\[1\]\.idempotency_key"):
        enqueue_many(runtime, [new, clash])
    assert _count(runtime) == 1  # the new text was not recorded on its own
    lost_race.clear()
    same = {**clash, "body": "Your order shipped"}
    ids = enqueue_many(runtime, [new, same])
    assert ids[1] == first and _count(runtime) == 2
    with Session(runtime.engine) as session:
        assert session.exec(select(func.count()).select_from(Part)).one() == 2
