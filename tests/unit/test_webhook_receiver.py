"""The webhook receiver's checks: a call from outside the allow-list, with a wrong secret or with a
malformed body is refused before the database is touched (the runtime here has no database at all:
touching it fails the test)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from config.settings import settings_from
from worker.web.hooks import hook_routes
from worker.webhooks import hook_token

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
