"""The client against strict HTTP mocks: every request's shape, every answer's parsing, every
failure's classification. Every registered mock must fire."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses

from worker.zipwhip import ClientConfig, Upload, ZipwhipClient
from worker.zipwhip.errors import Classification, ErrorKind, ProviderError

BASE = "https://api.test/"
KEY = "0b6f2e8a-3c1d-4e5f-9a7b-123456789abc:309626613"
BIG_ID = "877692606781038593"  # > 2^53: a float would round it


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def client() -> ZipwhipClient:
    return ZipwhipClient(ClientConfig(base_url=BASE.rstrip("/"), read_timeout_s=1))


def _form(call: Any) -> dict[str, list[str]]:
    return parse_qs(call.request.body, keep_blank_values=True)


def test_send_sms_posts_a_form_with_repeated_contacts(
    mocked: responses.RequestsMock, client: ZipwhipClient
) -> None:
    answer = {
        "success": True,
        "response": {
            "fingerprint": None,
            "root": "327559093363723100",
            "tokens": [
                {"contact": 1, "device": 2, "fingerprint": "9", "message": "327559093363723008"},
                {"contact": 3, "device": 2, "fingerprint": "8", "message": "327559093363723009"},
            ],
        },
    }
    mocked.post(BASE + "message/send", json=answer)
    receipt = client.send_sms(KEY, ["+12065551234", "+12065551235"], "héllo")
    form = _form(mocked.calls[0])
    assert mocked.calls[0].request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form == {"session": [KEY], "contacts": ["+12065551234", "+12065551235"], "body": ["héllo"]}
    assert receipt.message_id == "327559093363723008" and receipt.root == "327559093363723100"
    assert [t.message for t in receipt.tokens] == ["327559093363723008", "327559093363723009"]


def test_send_mms_is_multipart_with_named_files(
    mocked: responses.RequestsMock, client: ZipwhipClient
) -> None:
    mocked.post(
        BASE + "messaging/send", body=f'{{"success":true,"response":{{"id":{BIG_ID},"status":"queued"}}}}'
    )
    files = [Upload("a.png", "image/png", b"\x89PNG"), Upload("rest.txt", "text/plain", b"the rest")]
    receipt = client.send_mms(KEY, "+12065551234", "see attached", files)
    request = mocked.calls[0].request
    body = request.body
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    for piece in (
        b'name="session"',
        KEY.encode(),
        b'name="to"',
        b'name="body"',
        b'name="image1"; filename="a.png"',
        b"Content-Type: image/png",
        b'name="file"; filename="rest.txt"',
        b"Content-Type: text/plain",
    ):
        assert piece in body
    assert receipt.message_id == BIG_ID  # a JSON number, kept exact as a string


def test_login_returns_the_session_key(mocked: responses.RequestsMock, client: ZipwhipClient) -> None:
    mocked.post(BASE + "user/login", json={"success": True, "response": KEY})
    assert client.login("5556661234", "pw") == KEY
    assert _form(mocked.calls[0]) == {"username": ["5556661234"], "password": ["pw"]}


def test_reading_calls_parse_messages_pages_and_conversations(
    mocked: responses.RequestsMock, client: ZipwhipClient
) -> None:
    message = {
        "id": BIG_ID,
        "fingerprint": "42",
        "address": "ptn:/2065551234",
        "destAddress": "2065551234",
        "body": "hi",
        "statusCode": 4,
        "messageStatus": 1003,
        "isInFinalState": True,
        "transmissionState": {"name": "DELIVERED"},
        "type": "ZO",
        "dateCreated": "2026-01-02T03:04:05.000+00:00",
    }
    mocked.post(BASE + "message/get", json={"success": True, "response": message})
    mocked.post(BASE + "message/list", json={"success": True, "total": 7, "size": 1, "response": [message]})
    mocked.post(
        BASE + "conversation/get",
        json={"success": True, "response": {"conversation": {"fingerprint": "42"}, "messages": [message]}},
    )
    mocked.post(
        BASE + "conversation/list",
        json={"success": True, "total": 1, "size": 1, "response": [{"fingerprint": "42"}]},
    )
    got = client.get_message(KEY, BIG_ID)
    assert (got.id, got.status_code, got.message_status, got.transmission_state) == (
        BIG_ID,
        4,
        1003,
        "DELIVERED",
    )
    assert got.date_created is not None and got.date_created.tzinfo is not None
    page = client.list_messages(KEY, start=20, limit=10)
    assert (page.total, page.size, page.messages[0].id) == (7, 1, BIG_ID)
    assert _form(mocked.calls[1])["start"] == ["20"] and _form(mocked.calls[1])["limit"] == ["10"]
    assert client.get_conversation(KEY, "42").conversation.fingerprint == "42"
    assert client.list_conversations(KEY).conversations[0].fingerprint == "42"


def test_webhooks_and_contacts(mocked: responses.RequestsMock, client: ZipwhipClient) -> None:
    hook = {
        "webhookId": 687557714,
        "type": "message",
        "event": "progress",
        "url": "https://x/h",
        "method": "POST",
    }
    mocked.post(BASE + "webhook/add", json={"success": True, "response": [hook]})
    mocked.post(BASE + "webhook/list", json={"success": True, "response": [hook]})
    mocked.post(BASE + "webhook/update", json={"success": True, "response": [hook]})
    mocked.post(BASE + "webhook/delete", json={"success": True, "response": []})
    mocked.post(
        BASE + "contact/save", json={"success": True, "response": {"id": 5, "mobileNumber": "+12065551234"}}
    )
    mocked.post(
        BASE + "contact/list",
        json={
            "success": True,
            "total": 1,
            "page": 1,
            "pages": 1,
            "response": [{"id": 5, "address": "ptn:/2065551234"}],
        },
    )
    assert client.add_webhook(KEY, "message", "progress", "https://x/h")[0].webhook_id == "687557714"
    assert len(client.list_webhooks(KEY)) == 1
    assert client.update_webhook(KEY, "687557714", "https://x/h2")[0].event == "progress"
    client.delete_webhook(KEY, "687557714")
    assert client.save_contact(KEY, "+12065551234", firstName="Ada").id == "5"
    assert _form(mocked.calls[4])["firstName"] == ["Ada"]
    assert client.list_contacts(KEY).contacts[0].mobile_number == "ptn:/2065551234"


HTML = "<html><body>Internal Server Error</body></html>"
FAILURES: list[tuple[str, dict[str, Any], ErrorKind, Classification, int | None]] = [
    (
        "text failure",
        {"json": {"success": False, "response": "Required String parameter 'body' is not present"}},
        ErrorKind.REJECTED,
        Classification.PERMANENT,
        None,
    ),
    (
        "coded -1234",
        {"status": 400, "json": {"success": False, "response": {"desc": "opted out", "code": -1234}}},
        ErrorKind.OPTED_OUT,
        Classification.PERMANENT,
        -1234,
    ),
    (
        "coded -855",
        {"status": 400, "json": {"success": False, "response": {"desc": "x", "code": -855}}},
        ErrorKind.REJECTED,
        Classification.RETRYABLE,
        -855,
    ),
    (
        "coded -1",
        {"json": {"success": False, "response": {"desc": "x", "code": -1}}},
        ErrorKind.REJECTED,
        Classification.RETRYABLE,
        -1,
    ),
    (
        "coded -703",
        {"status": 400, "json": {"success": False, "response": {"desc": "bad", "code": -703}}},
        ErrorKind.REJECTED,
        Classification.PERMANENT,
        -703,
    ),
    (
        "unknown code",
        {"status": 400, "json": {"success": False, "response": {"desc": "?", "code": -4242}}},
        ErrorKind.REJECTED,
        Classification.PERMANENT,
        -4242,
    ),
    (
        "session 401",
        {"status": 401, "json": {"success": False, "response": "Invalid session"}},
        ErrorKind.SESSION_INVALID,
        Classification.SESSION_INVALID,
        None,
    ),
    (
        "session 403",
        {"status": 403, "body": "Forbidden"},
        ErrorKind.SESSION_INVALID,
        Classification.SESSION_INVALID,
        None,
    ),
    (
        "session 200",
        {"json": {"success": False, "response": "Invalid session"}},
        ErrorKind.SESSION_INVALID,
        Classification.SESSION_INVALID,
        None,
    ),
    ("500 html", {"status": 500, "body": HTML}, ErrorKind.SERVER_ERROR, Classification.RETRYABLE, None),
    (
        "503 json",
        {"status": 503, "json": {"success": False}},
        ErrorKind.SERVER_ERROR,
        Classification.RETRYABLE,
        None,
    ),
    (
        "429",
        {"status": 429, "json": {"success": False, "response": "slow down"}, "headers": {"Retry-After": "7"}},
        ErrorKind.THROTTLED,
        Classification.RETRYABLE,
        None,
    ),
    ("html 200", {"body": HTML}, ErrorKind.UNPARSEABLE, Classification.AMBIGUOUS, None),
    ("empty 200", {"body": ""}, ErrorKind.UNPARSEABLE, Classification.AMBIGUOUS, None),
    (
        "truncated 200",
        {"body": '{"success": true, "response": {"root": "1'},
        ErrorKind.UNPARSEABLE,
        Classification.AMBIGUOUS,
        None,
    ),
    ("not an envelope", {"json": [1, 2]}, ErrorKind.UNPARSEABLE, Classification.AMBIGUOUS, None),
    (
        "missing tokens",
        {"json": {"success": True, "response": {"root": "1"}}},
        ErrorKind.UNPARSEABLE,
        Classification.AMBIGUOUS,
        None,
    ),
    (
        "tokens not ids",
        {"json": {"success": True, "response": {"root": "1", "tokens": [{"message": 1.5}]}}},
        ErrorKind.UNPARSEABLE,
        Classification.AMBIGUOUS,
        None,
    ),
    ("404 html", {"status": 404, "body": HTML}, ErrorKind.REJECTED, Classification.PERMANENT, None),
]


@pytest.mark.parametrize(
    ("case", "answer", "kind", "classification", "code"), FAILURES, ids=[f[0] for f in FAILURES]
)
def test_every_failure_of_a_send_is_classified(
    mocked: responses.RequestsMock,
    client: ZipwhipClient,
    case: str,
    answer: dict[str, Any],
    kind: ErrorKind,
    classification: Classification,
    code: int | None,
) -> None:
    mocked.post(BASE + "message/send", **answer)
    with pytest.raises(ProviderError) as caught:
        client.send_sms(KEY, "+12065551234", "hi")
    error = caught.value
    assert (error.kind, error.classification, error.code) == (kind, classification, code)
    assert error.http_status == answer.get("status", 200)
    assert KEY not in str(error) and KEY not in repr(error.args)
    if kind is ErrorKind.THROTTLED:
        assert error.retry_after_s == 7


def test_an_unreadable_answer_to_a_read_is_retryable_not_ambiguous(
    mocked: responses.RequestsMock, client: ZipwhipClient
) -> None:
    mocked.post(BASE + "message/get", body=HTML)
    with pytest.raises(ProviderError) as caught:
        client.get_message(KEY, "1")
    assert caught.value.classification is Classification.RETRYABLE


@pytest.mark.parametrize(
    ("exception", "kind", "classification"),
    [
        (requests.ConnectTimeout("connect"), ErrorKind.CONNECTION_FAILED, Classification.RETRYABLE),
        (
            requests.ReadTimeout(f"read timed out for session={KEY}"),
            ErrorKind.TIMED_OUT,
            Classification.AMBIGUOUS,
        ),
        (requests.ConnectionError("Connection aborted."), ErrorKind.TIMED_OUT, Classification.AMBIGUOUS),
        (requests.exceptions.ChunkedEncodingError("broken"), ErrorKind.TIMED_OUT, Classification.AMBIGUOUS),
    ],
)
def test_transport_failures_of_a_send_are_classified(
    mocked: responses.RequestsMock,
    client: ZipwhipClient,
    exception: Exception,
    kind: ErrorKind,
    classification: Classification,
) -> None:
    mocked.post(BASE + "message/send", body=exception)
    with pytest.raises(ProviderError) as caught:
        client.send_sms(KEY, "+12065551234", "hi")
    assert (caught.value.kind, caught.value.classification) == (kind, classification)
    assert KEY not in str(caught.value) and caught.value.__cause__ is None


def test_a_timeout_on_a_read_is_simply_retryable(
    mocked: responses.RequestsMock, client: ZipwhipClient
) -> None:
    mocked.post(BASE + "message/list", body=requests.ReadTimeout("read"))
    with pytest.raises(ProviderError) as caught:
        client.list_messages(KEY)
    assert caught.value.classification is Classification.RETRYABLE


def test_a_closed_port_is_a_connection_failure() -> None:
    client = ZipwhipClient(ClientConfig(base_url="http://127.0.0.1:9/", connect_timeout_s=1))
    with pytest.raises(ProviderError) as caught:
        client.send_sms(KEY, "+12065551234", "hi")
    assert (caught.value.kind, caught.value.classification) == (
        ErrorKind.CONNECTION_FAILED,
        Classification.RETRYABLE,
    )


def test_big_ids_never_pass_through_a_float(mocked: responses.RequestsMock, client: ZipwhipClient) -> None:
    body = json.dumps({"success": True, "response": {"id": BIG_ID}}).replace(f'"{BIG_ID}"', BIG_ID)
    mocked.post(BASE + "message/get", body=body)
    assert client.get_message(KEY, BIG_ID).id == BIG_ID
    assert float(BIG_ID) != int(BIG_ID)  # the trap this guards against


def test_proxy_and_ca_settings_are_read_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests would read the environment on every call; the client reads it when it is built."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/company.pem")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    http = ZipwhipClient(ClientConfig(base_url="https://api.zipwhip.com/"))._http
    assert http.proxies.get("https") == "http://proxy.internal:3128"
    assert http.verify == "/etc/ssl/company.pem" and not http.trust_env
    monkeypatch.setenv("NO_PROXY", "api.zipwhip.com")
    assert "https" not in ZipwhipClient(ClientConfig(base_url="https://api.zipwhip.com/"))._http.proxies
