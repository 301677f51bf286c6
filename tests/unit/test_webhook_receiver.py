"""The webhook receiver's checks: a call from outside the allow-list, with a wrong secret or with a
malformed body is refused before the database is touched (the runtime here has no database at all:
touching it fails the test)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from config.settings import settings_from
from worker.inbound.webhooks import hook_token
from worker.web.webhooks import MAX_BODY_BYTES, hook_routes

SECRET = "unit-test-secret"
LINE = "+15556661234"
PROGRESS = {"id": 12, "statusCode": 4, "messageStatus": 1003}


class NoDatabase:
    """Stands where the engine would be; any use of it is a failure of the test."""

    def __getattr__(self, name: str) -> None:
        raise AssertionError(f"the database was touched ({name})")


def _client(source: str, allowed: str = '["203.0.113.0/24"]', secret: str = SECRET) -> TestClient:
    settings = settings_from({"OUTBOX_WEBHOOK_SECRET_KEY": secret, "OUTBOX_WEBHOOK_ALLOWED_SOURCES": allowed})
    runtime = SimpleNamespace(settings=settings, engine=NoDatabase())
    app = Starlette(routes=hook_routes(runtime))  # type: ignore[arg-type]
    return TestClient(app, client=(source, 40000))


def _url(event: str = "progress", token: str | None = None, line: str = LINE) -> str:
    return f"/hooks/{line.lstrip('+')}/{token or hook_token(SECRET, line)}/message/{event}"


def test_a_source_outside_the_allow_list_is_forbidden_even_with_the_right_secret() -> None:
    assert _client("198.51.100.7").post(_url(), json=PROGRESS).status_code == 403


def test_a_source_that_is_no_address_is_forbidden_when_a_list_is_set() -> None:
    assert _client("testclient").post(_url(), json=PROGRESS).status_code == 403


@pytest.mark.parametrize(
    "url",
    [
        _url(token="0" * 40),  # forged
        _url(token=hook_token(SECRET, "+12065550100")),  # another line's secret
        _url(event="read"),  # an event we never registered
    ],
)
def test_a_wrong_secret_or_event_is_not_found(url: str) -> None:
    assert _client("203.0.113.9").post(url, json=PROGRESS).status_code == 404


def test_with_no_secret_key_set_webhooks_are_off() -> None:
    assert _client("203.0.113.9", secret="").post(_url(), json=PROGRESS).status_code == 404


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>502 Bad Gateway</html>", "malformed payload"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"statusCode": 4}', "malformed payload"),  # no id
        (b'{"id": 12}', "needs a statusCode"),
    ],
)
def test_a_malformed_body_is_a_400_naming_the_problem(body: bytes, reason: str) -> None:
    answer = _client("203.0.113.9").post(_url(), content=body)
    assert answer.status_code == 400 and reason in answer.json()["error"]


def test_an_oversize_body_is_refused() -> None:
    answer = _client("203.0.113.9").post(_url(), content=b"{" + b" " * 70_000 + b"}")
    assert answer.status_code == 413


def _post_streamed(chunks: Iterator[bytes], headers: dict[str, str] | None = None) -> tuple[int, int]:
    """POST a body to the app chunk by chunk, the way a server hands it over (ASGI `receive`); returns
    (status, chunks the app asked for). The TestClient reads a streamed body whole before the app
    sees it, so the app is driven directly here to see how far it reads."""
    settings = settings_from({"OUTBOX_WEBHOOK_SECRET_KEY": SECRET})
    app = Starlette(routes=hook_routes(SimpleNamespace(settings=settings, engine=NoDatabase())))  # type: ignore[arg-type]
    asked, answer = 0, {}
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": _url(),
        "raw_path": _url().encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), *raw_headers],
        "client": ("203.0.113.9", 40000),
        "server": ("testserver", 80),
    }

    async def receive() -> dict[str, object]:
        nonlocal asked
        asked += 1
        chunk = next(chunks, None)
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]

    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    return int(answer["status"]), asked


def test_a_huge_body_is_refused_once_past_the_cap_without_reading_the_rest() -> None:
    chunk = b" " * 4096
    status, asked = _post_streamed(itertools.repeat(chunk, 4096))  # 16 MB chunked: no Content-Length
    assert status == 413
    assert asked * len(chunk) <= MAX_BODY_BYTES + 2 * len(chunk)


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    status, asked = _post_streamed(iter([b"{}"]), {"content-length": str(300 * 1024 * 1024)})
    assert (status, asked) == (413, 0)


def test_a_streamed_body_under_the_cap_is_read_to_its_end() -> None:
    status, _ = _post_streamed(iter([b'{"id": 12,', b' "statusCode": 4', b", 7]"]))
    assert status == 400  # read whole and found malformed: not refused for its size


@pytest.mark.parametrize(
    "token",
    ["é" * 40, "\u202e" + "0" * 39, "%00", "0" * 400],
    ids=["accented", "right-to-left-mark", "nul", "long"],
)
def test_a_token_of_any_characters_is_not_found(token: str) -> None:
    assert _client("203.0.113.9").post(_url(token=token), json=PROGRESS).status_code == 404


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 5000 + b"]" * 5000, "nested deeper than 32 levels"),  # past the interpreter's recursion
        (b'{"a": ' * 40 + b"1" + b"}" * 40, "nested deeper than 32 levels"),
        (b'{"id": 12, "statusCode": 1e400}', "out of range"),
        (b'{"id": 12, "statusCode": -1e400}', "out of range"),
        (b'{"id": 12, "statusCode": NaN}', "non-finite number NaN"),
        (b'{"id": 12, "statusCode": Infinity}', "non-finite number Infinity"),
        (b'{"id": 12, "statusCode": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"id": 12, "body": "\xff\xfe"}', "not valid JSON"),
    ],
)
def test_json_we_do_not_accept_is_a_400_naming_the_problem(body: bytes, reason: str) -> None:
    answer = _client("203.0.113.9").post(_url(), content=body)
    assert answer.status_code == 400 and reason in answer.json()["error"], answer.text
