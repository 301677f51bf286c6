"""The bad input corpus: every item gets a clear error naming what is wrong, and nothing is
recorded in the database or queued in the broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func
from sqlmodel import Session, select

from config.settings import settings_from
from worker.app import configure
from worker.constants import CONTROL_QUEUE, SEND_QUEUE, STATUS_QUEUE
from worker.enqueue import enqueue
from worker.planning import FileInput, PlanningError
from worker.runtime import Runtime, get_runtime
from worker.store.db import migrate, transaction
from worker.store.models import Attachment, Line, Message, Part, StatusEvent

LINE = "5556661234"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


@pytest.fixture
def runtime(broker_url: str, tmp_path: Path) -> Iterator[Runtime]:
    configure(
        settings_from({"OUTBOX_BROKER_URL": broker_url, "OUTBOX_DATABASE_URL": f"sqlite:///{tmp_path}/o.db"})
    )
    runtime = get_runtime()
    migrate(runtime.engine)
    with transaction(runtime.engine) as session:
        session.add(Line(phone="+1" + LINE, username=LINE, session_key="k:1", state="active"))
    redis.Redis.from_url(broker_url).flushdb()
    yield runtime
    runtime.close()


BIG = "x" * 7_000_000
CORPUS: list[tuple[str, dict[str, Any], str, str]] = [
    ("invalid recipient", {"to": "12345"}, "to", "not a valid phone number"),
    ("letters for a number", {"to": "call me maybe"}, "to", "not a phone number"),
    ("foreign recipient", {"to": "+44 7911 123456"}, "to", "+44 numbers cannot be texted"),
    ("premium-rate recipient", {"to": "+1 900 555 0199"}, "to", "cannot receive texts"),
    ("recipient list", {"to": ["+12065551234", "+12065551235"]}, "to", "a phone number is required"),
    ("huge recipient list", {"to": ",".join(f"+1206555{n:04d}" for n in range(1000, 3000))}, "to", "not a"),
    ("empty body", {"body": ""}, "body", "nothing to send"),
    ("whitespace body", {"body": " \n\t "}, "body", "nothing to send"),
    ("no body", {"body": None}, "body", "nothing to send"),
    ("body of bytes", {"body": b"\xff\xfe"}, "body", "must be text"),
    ("NUL in the body", {"body": "hi\x00there"}, "body", "control characters"),
    ("lone surrogate", {"body": "bad \udc80"}, "body", "lone surrogate"),
    ("oversize body", {"body": BIG}, "body", "needs 12 provider messages"),
    (
        "oversize file",
        {"files": [FileInput("huge.png", PNG + b"\x00" * 700_000)]},
        "attachments[1]",
        "more than",
    ),
    ("wrong type", {"files": [FileInput("doc.pdf", b"%PDF-1.7")]}, "attachments[1]", "type .pdf not allowed"),
    ("lying type", {"files": [FileInput("cat.png", JPEG)]}, "attachments[1]", "the content is JPEG"),
    ("invalid UTF-8 text file", {"files": [FileInput("note.txt", b"\xc3\x28")]}, "attachments[1]", "UTF-8"),
    ("empty file", {"files": [FileInput("e.gif", b"")]}, "attachments[1]", "empty"),
    ("missing file", {"files": ["/no/such/file.png"]}, "attachments[1]", "cannot read"),
    ("unknown line", {"line": "+12065550199"}, "line", "unknown line"),
    ("invalid line", {"line": "555"}, "line", "not a possible phone number"),
    ("SQL in the number", {"to": "'; DROP TABLE message; --"}, "to", "not a phone number"),
    ("SQL in the line", {"line": "1 OR 1=1"}, "line", "not a"),
    ("expired before sending", {"expires_at": "2000-01-01"}, "expires_at", "must be a datetime"),
    ("metadata not JSON", {"metadata": {"when": object()}}, "metadata", "JSON"),
    ("idempotency key too long", {"idempotency_key": "k" * 201}, "idempotency_key", "at most 200"),
]


@pytest.mark.parametrize(("case", "given", "field", "says"), CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_input_is_named_and_changes_nothing(
    runtime: Runtime, broker_url: str, case: str, given: dict[str, Any], field: str, says: str
) -> None:
    request = {"line": LINE, "to": "+12065551234", "body": "Hello", "files": [], **given}
    extras = {k: request.pop(k) for k in ("expires_at", "metadata", "idempotency_key") if k in request}
    with pytest.raises(PlanningError) as caught:
        enqueue(runtime, request["line"], request["to"], request["body"], request["files"], **extras)
    assert field in {p.field for p in caught.value.problems}, caught.value
    assert says in str(caught.value)
    with Session(runtime.engine) as session:
        for table in (Message, Part, Attachment, StatusEvent):
            assert session.exec(select(func.count()).select_from(table)).one() == 0, table
    broker = redis.Redis.from_url(broker_url)
    assert [broker.llen(q) for q in (SEND_QUEUE, STATUS_QUEUE, CONTROL_QUEUE)] == [0, 0, 0]


def test_injection_strings_in_a_body_are_just_text(runtime: Runtime) -> None:
    body = "Robert'); DROP TABLE message;-- <script>alert(1)</script> {{7*7}} ${jndi:ldap://x}"
    message_id = enqueue(runtime, LINE, "+12065551234", body)
    with Session(runtime.engine) as session:
        assert session.exec(select(Part.body).where(Part.message_id == message_id)).one() == body
