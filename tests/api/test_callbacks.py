"""Status callbacks: signed as documented, kept with every state change of a message that asks for
them, delivered in order with backoff, never to an address it must not reach."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlmodel import Session, col, select

from tests.api.conftest import LINE, Api, make_api
from tests.support.receiver import Receiver, receiving
from worker.api.callback_url import address_allowed, url_problem
from worker.api.callbacks import backoff_s, deliver
from worker.api.signing import sign, signature, verify
from worker.store.db import transaction
from worker.store.models import CallbackDelivery, utcnow
from worker.store.record import lock_message, move_part, quarantine
from worker.store.states import Source, State

SECRET = "whsec_test"


def test_a_signature_verifies_and_any_change_breaks_it() -> None:
    body = b'{"event_id":1,"state":"delivered"}'
    header = sign(SECRET, body, now=1_700_000_000)
    assert header == f"t=1700000000,v1={signature(SECRET, body, 1_700_000_000)}"
    assert verify(SECRET, header, body, now=1_700_000_010)
    assert not verify(SECRET, header, body + b" ", now=1_700_000_010)
    assert not verify("whsec_other", header, body, now=1_700_000_010)
    assert not verify(SECRET, header, body, now=1_700_000_000 + 301)  # a replay, later
    assert not verify(SECRET, header.replace("t=1700000000", "t=1700000005"), body, now=1_700_000_010)
    assert not verify(SECRET, "v1=abc", body)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/outbox", True),
        ("http://93.184.216.34:8080/x", True),
        ("ftp://example.com/x", False),
        ("https:///nohost", False),
        ("https://user:pw@example.com/", False),
        ("http://127.0.0.1/x", False),
        ("http://localhost:9000/", False),
        ("http://10.0.0.5/", False),
        ("http://169.254.169.254/latest/meta-data/", False),
        ("http://[::1]/", False),
        ("http://[::ffff:127.0.0.1]/", False),
        ("https://example.com/a b", False),
        (42, False),
    ],
)
def test_callback_urls_are_http_and_public_only(url: object, allowed: bool) -> None:
    assert (url_problem(url, []) is None) is allowed


def test_an_operator_may_allow_private_networks() -> None:
    private = [ipaddress.ip_network("127.0.0.0/8")]
    assert url_problem("http://127.0.0.1:9000/x", private) is None
    assert address_allowed(ipaddress.ip_address("127.0.0.2"), private)
    assert not address_allowed(ipaddress.ip_address("10.0.0.1"), private)


def test_backoff_doubles_to_a_cap() -> None:
    assert [backoff_s(n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0] and backoff_s(30) == 300.0


@pytest.fixture
def api(sqlite_url: str, broker_url: str) -> Iterator[Api]:
    yield from make_api(sqlite_url, broker_url, OUTBOX_CALLBACK_PRIVATE_NETWORKS='["127.0.0.0/8"]')


def _send(api: Api, receiver: Receiver, events: str) -> int:
    message = {"line": LINE, "to": "2065551234", "body": "hi", "metadata": {"order": 5}}
    message |= {"status_callback": receiver.url, "status_callback_events": events}
    answer = api.client.post("/v1/messages", json=message, headers=api.auth())
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def _move(api: Api, message_id: int, *states: State) -> None:
    for state in states:
        with transaction(api.runtime.engine) as session:
            locked = lock_message(session, message_id)
            assert locked is not None
            move_part(session, locked, locked.parts[0], state, Source.SEND, utcnow())


def _deliver(api: Api, message_id: int) -> float | None:
    with requests.Session() as http:
        return deliver(
            api.runtime.engine, api.runtime.redis, api.runtime.settings, message_id, http
        ).again_in_s


def test_every_change_is_told_in_order_signed_under_the_keys_secret(api: Api) -> None:
    with receiving() as receiver:
        message_id = _send(api, receiver, "all")
        _move(api, message_id, State.SENDING, State.SENT, State.DELIVERED)
        assert _deliver(api, message_id) is None
        assert [e["state"] for e in receiver.events()] == ["sending", "sent", "delivered"]
        for headers, body in receiver.calls:
            assert verify(api.key.signing_secret, headers["outbox-signature"], body)
        last = receiver.events()[-1]
        assert last["final"] and last["message_id"] == message_id and last["metadata"] == {"order": 5}
        assert last["line"] == "+1" + LINE and last["to"] == "+12065551234"


def test_final_only_callbacks_hear_of_the_final_state_alone(api: Api) -> None:
    with receiving() as receiver:
        message_id = _send(api, receiver, "final")
        _move(api, message_id, State.SENDING, State.SENT, State.DELIVERED)
        _deliver(api, message_id)
        assert [e["state"] for e in receiver.events()] == ["delivered"]


def test_a_refusing_receiver_is_retried_with_backoff_and_holds_later_events(api: Api) -> None:
    with receiving() as receiver:
        receiver.answers = [500]
        message_id = _send(api, receiver, "all")
        _move(api, message_id, State.SENDING, State.SENT)
        wait = _deliver(api, message_id)
        assert wait == 2.0 and [e["state"] for e in receiver.events()] == ["sending"]
        assert _deliver(api, message_id) is not None  # not due yet: nothing sent
        assert len(receiver.calls) == 1
        with Session(api.runtime.engine) as session:
            first = session.exec(select(CallbackDelivery).order_by(col(CallbackDelivery.id))).first()
            assert first is not None and first.last_error == "HTTP 500"
            first.next_attempt_at = utcnow()
            session.add(first)
            session.commit()
        assert _deliver(api, message_id) is None
        assert [e["state"] for e in receiver.events()] == ["sending", "sending", "sent"]
        assert receiver.events()[0]["event_id"] == receiver.events()[1]["event_id"]  # a retry, same event


def test_a_callback_to_a_private_address_is_given_up_unsent(sqlite_url: str, broker_url: str) -> None:
    for api in make_api(sqlite_url, broker_url):
        message = {"line": LINE, "to": "2065551234", "body": "hi", "status_callback": "http://127.0.0.1:9/x"}
        refused = api.client.post("/v1/messages", json=message, headers=api.auth())
        assert (
            refused.status_code == 422
            and refused.json()["error"]["problems"][0]["field"] == "status_callback"
        )


def test_the_readme_verification_code_accepts_our_signature_and_nothing_else() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(b for b in readme.split("```python\n")[1:] if "def verify(" in b).split("```")[0]
    namespace: dict[str, Any] = {}
    exec(block, namespace)
    body = b'{"event_id":7,"state":"delivered"}'
    assert namespace["verify"](SECRET, sign(SECRET, body), body)
    assert not namespace["verify"](SECRET, sign(SECRET, body), body + b"x")
    assert not namespace["verify"](SECRET, sign(SECRET, body, now=1_000), body)


def test_a_quarantined_message_is_told_as_failed(api: Api) -> None:
    with receiving() as receiver:
        message_id = _send(api, receiver, "final")
        with transaction(api.runtime.engine) as session:  # plain statements: no flush sees the change
            assert quarantine(session, message_id, "could not be claimed", Source.SEND, utcnow()) == "failed"
        _deliver(api, message_id)
        [event] = receiver.events()
        assert event["state"] == "failed" and event["message_id"] == message_id
