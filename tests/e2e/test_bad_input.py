"""The bad input corpus: every item gets a clear error naming what is wrong, and nothing is
recorded in the database or queued in the broker."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func
from sqlmodel import Session, select
from typer.testing import CliRunner

from config.settings import settings_from
from tests.support.images import png_declaring
from worker.app import configure
from worker.cli.root import app as cli
from worker.infra.broker import queue_lengths
from worker.infra.constants import CONTROL_QUEUE, SEND_QUEUE, STATUS_QUEUE
from worker.infra.runtime import Runtime, get_runtime
from worker.planning import FileInput, PlanningError
from worker.producer.enqueue import enqueue
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


@dataclass(frozen=True)
class OnDisk:
    """A file a case needs on disk, made in the test's own directory: a link (to `target`), a FIFO
    or a directory, under `name`."""

    kind: str
    name: str
    target: str = ""


def prepared(given: dict[str, Any], runtime: Runtime, directory: Path) -> dict[str, Any]:
    """The case's request fields: its files made on disk, and `shrink_images` applied to the runtime."""
    given = dict(given)
    if given.pop("shrink_images", False):
        runtime.__dict__["limits"] = replace(runtime.limits, shrink_images=True)
    files = given.get("files")
    if isinstance(files, list):
        given["files"] = [_made(f, directory) if isinstance(f, OnDisk) else f for f in files]
    return given


def _made(file: OnDisk, directory: Path) -> str:
    path = directory / file.name
    if file.kind == "link":
        path.symlink_to(file.target)
    elif file.kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    return str(path)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def _circular() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


WEST = timezone(timedelta(hours=-5))
EAST = timezone(timedelta(hours=5))
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
    ("oversize body", {"body": BIG}, "body", "at least 7,000,000 bytes is more than one request may carry"),
    ("oversize body of wide characters", {"body": "€" * 2_500_000}, "body", "7,500,000 bytes is more than"),
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
    ("a device for a file", {"files": ["/dev/zero"]}, "attachments[1]", "type (none) not allowed"),
    (
        "a link to a device",
        {"files": [OnDisk("link", "zero.png", "/dev/zero")]},
        "attachments[1]",
        "zero.png: is a symbolic link",
    ),
    (
        "a link to a secret",
        {"files": [OnDisk("link", "passwd.txt", "/etc/passwd")]},
        "attachments[1]",
        "passwd.txt: is a symbolic link",
    ),
    ("a FIFO for a file", {"files": [OnDisk("fifo", "pipe.png")]}, "attachments[1]", "is a FIFO"),
    ("a directory for a file", {"files": [OnDisk("dir", "album.png")]}, "attachments[1]", "is a directory"),
    (
        "too many files",
        {"files": [FileInput(f"{n}.png", PNG) for n in range(21)]},
        "attachments",
        "more than 20",
    ),
    ("one path for the file list", {"files": "photo.png"}, "attachments", "must be a list of files, not str"),
    ("a number for a file", {"files": [42]}, "attachments[1]", "must be a path or a FileInput, not int"),
    ("text for file data", {"files": [FileInput("a.png", "text")]}, "attachments[1]", "data (bytes)"),  # type: ignore[arg-type]
    (
        "a decompression bomb",
        {
            "files": [FileInput("bomb.png", png_declaring(100_000, 100_000, padding=700_000))],
            "shrink_images": True,
        },
        "attachments[1]",
        "bomb.png: declares more pixels than allowed",
    ),
    (
        "an image Pillow cannot read",
        {"files": [FileInput("junk.png", PNG + b"\x01" * 700_000)], "shrink_images": True},
        "attachments[1]",
        "junk.png: cannot be read as a PNG image",
    ),
    ("unknown line", {"line": "+12065550199"}, "line", "unknown line"),
    ("invalid line", {"line": "555"}, "line", "not a possible phone number"),
    ("SQL in the number", {"to": "'; DROP TABLE message; --"}, "to", "not a phone number"),
    ("SQL in the line", {"line": "1 OR 1=1"}, "line", "not a"),
    ("expired before sending", {"expires_at": "2000-01-01"}, "expires_at", "must be a datetime"),
    (
        "send_at at the end of time, west of UTC",
        {"send_at": datetime.max.replace(tzinfo=WEST)},
        "send_at",
        "out of range",
    ),
    (
        "expires_at at the end of time, west of UTC",
        {"expires_at": datetime.max.replace(tzinfo=WEST)},
        "expires_at",
        "out of range",
    ),
    (
        "send_at at the start of time, east of UTC",
        {"send_at": datetime.min.replace(tzinfo=EAST)},
        "send_at",
        "out of range",
    ),
    ("send_at at the end of time", {"send_at": datetime.max}, "send_at", "more than 366 days from now"),
    ("send_at long ago", {"send_at": datetime(1970, 1, 1, tzinfo=UTC)}, "send_at", "more than 366 days ago"),
    (
        "expires_at years ahead",
        {"expires_at": datetime.now(UTC) + timedelta(days=4000)},
        "expires_at",
        "more than 366 days from now",
    ),
    ("metadata not JSON", {"metadata": {"when": object()}}, "metadata", "JSON"),
    ("metadata not a mapping", {"metadata": [1, 2]}, "metadata", "must be a mapping, not list"),
    ("bytes in metadata", {"metadata": {"raw": b"\x00"}}, "metadata", "type bytes is not JSON"),
    (
        "NaN in metadata",
        {"metadata": {"score": float("nan")}},
        "metadata",
        "nan is not a number JSON can hold",
    ),
    ("infinity in metadata", {"metadata": {"n": [float("-inf")]}}, "metadata", "at ['n'][0]: -inf is not"),
    ("deeply nested metadata", {"metadata": _nested(100_000)}, "metadata", "nested more than 16 deep"),
    ("circular metadata", {"metadata": _circular()}, "metadata", "nested more than 16 deep"),
    ("huge metadata", {"metadata": {"blob": "x" * 100_000}}, "metadata", "more than 16,384 bytes"),
    (
        "metadata of many keys",
        {"metadata": {f"k{n}": n for n in range(100_000)}},
        "metadata",
        "more than 16,384",
    ),
    ("a number as a metadata key", {"metadata": {1: "one"}}, "metadata", "keys must be text, not int"),
    ("NUL in metadata", {"metadata": {"note": "a\x00b"}}, "metadata", "at ['note']: text with a NUL"),
    ("lone surrogate in metadata", {"metadata": {"note": "\udc80"}}, "metadata", "lone surrogate"),
    ("lone surrogate in a metadata key", {"metadata": {"\udc80": 1}}, "metadata", "lone surrogate"),
    ("integer beyond 64 bits in metadata", {"metadata": {"id": 2**64}}, "metadata", "beyond 64 bits"),
    ("idempotency key too long", {"idempotency_key": "k" * 201}, "idempotency_key", "at most 200"),
    ("NUL in the idempotency key", {"idempotency_key": "a\x00b"}, "idempotency_key", "control characters"),
    ("newline in the idempotency key", {"idempotency_key": "a\nb"}, "idempotency_key", "control characters"),
    ("lone surrogate in the idempotency key", {"idempotency_key": "k\udc80"}, "idempotency_key", "surrogate"),
]
EXTRAS = ("send_at", "expires_at", "metadata", "idempotency_key")


@pytest.mark.parametrize(("case", "given", "field", "says"), CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_input_is_named_and_changes_nothing(
    runtime: Runtime, broker_url: str, tmp_path: Path, case: str, given: dict[str, Any], field: str, says: str
) -> None:
    request = {
        "line": LINE,
        "to": "+12065551234",
        "body": "Hello",
        "files": [],
        **prepared(given, runtime, tmp_path),
    }
    extras = {k: request.pop(k) for k in EXTRAS if k in request}
    with pytest.raises(PlanningError) as caught:
        enqueue(runtime, request["line"], request["to"], request["body"], request["files"], **extras)
    assert field in {p.field for p in caught.value.problems}, caught.value
    assert says in str(caught.value)
    assert len(str(caught.value)) < 500, "an error quotes what it names, not all of it"
    with Session(runtime.engine) as session:
        for table in (Message, Part, Attachment, StatusEvent):
            assert session.exec(select(func.count()).select_from(table)).one() == 0, table
    broker = redis.Redis.from_url(broker_url)
    assert set(queue_lengths(broker, [SEND_QUEUE, STATUS_QUEUE, CONTROL_QUEUE]).values()) == {0}


def test_injection_strings_in_a_body_are_just_text(runtime: Runtime) -> None:
    body = "Robert'); DROP TABLE message;-- <script>alert(1)</script> {{7*7}} ${jndi:ldap://x}"
    message_id = enqueue(runtime, LINE, "+12065551234", body)
    with Session(runtime.engine) as session:
        assert session.exec(select(Part.body).where(Part.message_id == message_id)).one() == body


def _on_disk(kind: str, directory: Path) -> str:
    """A --body-file of each bad kind."""
    made = {
        "link": OnDisk("link", "letter.txt", "/etc/passwd"),
        "fifo": OnDisk("fifo", "letter.txt"),
        "directory": OnDisk("dir", "letter.txt"),
    }
    if kind in made:
        return _made(made[kind], directory)
    path = directory / "letter.txt"
    path.write_bytes(b"x" * 6_000_001 if kind == "oversize" else b"caf\xe9")
    return str(path)


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("/dev/zero", "/dev/zero: is a character device, not a regular file"),
        ("link", "is a symbolic link; give the file it points to"),
        ("fifo", "is a FIFO (named pipe), not a regular file"),
        ("directory", "is a directory, not a regular file"),
        ("oversize", "6,000,001 bytes is more than one request may carry (6,000,000)"),
        ("latin-1", "not UTF-8 text"),
    ],
)
def test_a_bad_body_file_is_named_before_it_is_read_whole(
    runtime: Runtime, tmp_path: Path, kind: str, says: str
) -> None:
    path = kind if kind.startswith("/") else _on_disk(kind, tmp_path)
    argv = ["send", "--line", LINE, "--to", "+12065551234", "--body-file", path]
    outcome: list[Any] = []
    command = threading.Thread(target=lambda: outcome.append(CliRunner().invoke(cli, argv)), daemon=True)
    command.start()
    command.join(timeout=60)
    if command.is_alive():  # blocked opening a FIFO: let it go before failing
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    assert outcome, "outbox send hung on its --body-file"
    result = outcome[0]
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.output.split())
    with Session(runtime.engine) as session:
        assert session.exec(select(func.count()).select_from(Message)).one() == 0
