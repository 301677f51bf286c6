"""The contract's calls for reading and tidying a line (user/get, message/read, message/delete,
conversation/read, conversation/delete), the contact fields of the message object and the JSON
envelope on every error, in each transport style, with raw HTTP against the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.contract.raw import LINE, STYLES, Style, login, post_form, webhook_receiver
from tests.support.simulator import SimulatorHandle, run_simulator

OPERATOR = f"operator@{LINE}"
_numbers = iter(range(4000, 5000))


def number() -> str:
    return f"206555{next(_numbers):04d}"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with run_simulator("--delivery-ms", "200") as handle:
        yield handle


def call(sim: SimulatorHandle, method: str, **params: Any) -> dict[str, Any]:
    answer: dict[str, Any] = post_form(sim.base_url, method, params).json()
    return answer


def send(sim: SimulatorHandle, key: str, to: str, body: str, **extra: str) -> str:
    answer = call(sim, "message/send", session=key, contacts=to, body=body, **extra)
    return str(answer["response"]["tokens"][0]["message"])


def get(sim: SimulatorHandle, key: str, message_id: str) -> dict[str, Any]:
    return call(sim, "message/get", session=key, id=message_id)


def listed_ids(sim: SimulatorHandle, key: str) -> list[str]:
    return [m["id"] for m in call(sim, "message/list", session=key, limit=1000)["response"]]


def conversation(sim: SimulatorHandle, key: str, fingerprint: str) -> dict[str, Any] | None:
    listing = call(sim, "conversation/list", session=key, limit=1000)["response"]
    return next((c for c in listing if c["fingerprint"] == fingerprint), None)


def unread(sim: SimulatorHandle, key: str, fingerprint: str) -> int:
    listed = conversation(sim, key, fingerprint)
    assert listed is not None
    return int(listed["unreadCount"])


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("username", [LINE, OPERATOR])
def test_user_get_is_the_logged_in_users_profile_on_the_lines_number(
    sim: SimulatorHandle, style: Style, username: str
) -> None:
    key = login(sim.base_url, username)
    answer = style(sim.base_url, "user/get", {"session": key}).json()
    assert answer["success"] is True
    user = answer["response"]["user"]
    for field in ("firstName", "lastName", "fullName", "mobileNumber", "carrier", "email", "notes"):
        assert field in user, field
    assert user["mobileNumber"] == LINE
    assert isinstance(answer["response"]["settings"], dict) and answer["response"]["groups"] == []


@pytest.mark.parametrize("style", STYLES)
def test_message_read_marks_received_texts_read(sim: SimulatorHandle, style: Style) -> None:
    key = login(sim.base_url, OPERATOR)  # reading is receiving: an Operator may
    sender = number()
    ids = [sim.inbound(LINE, sender, body)["id"] for body in ("one", "two")]
    assert [get(sim, key, i)["response"]["isRead"] for i in ids] == [False, False]
    answer = style(sim.base_url, "message/read", {"session": key, "message": ids})  # repeated key
    assert answer.json() == {"success": True, "response": False}
    assert [get(sim, key, i)["response"]["isRead"] for i in ids] == [True, True]


def test_message_read_of_an_unknown_id_fails_and_changes_nothing(sim: SimulatorHandle) -> None:
    key = login(sim.base_url)
    known = sim.inbound(LINE, number(), "unread")["id"]
    answer = call(sim, "message/read", session=key, message=[known, "12345"])
    assert answer["success"] is False and "12345" in answer["response"]
    assert get(sim, key, known)["response"]["isRead"] is False
    assert call(sim, "message/read", session=key)["success"] is False  # no message named


@pytest.mark.parametrize("style", STYLES)
def test_message_delete_hides_messages_from_lists_and_gets(sim: SimulatorHandle, style: Style) -> None:
    key = login(sim.base_url)
    to = number()
    gone, kept = send(sim, key, to, "gone"), send(sim, key, to, "kept")
    answer = style(sim.base_url, "message/delete", {"session": key, "message": gone})
    assert answer.json() == {"success": True, "response": False}
    assert get(sim, key, gone)["success"] is False and get(sim, key, kept)["success"] is True
    assert gone not in listed_ids(sim, key) and kept in listed_ids(sim, key)
    fingerprint = get(sim, key, kept)["response"]["fingerprint"]
    shown = call(sim, "conversation/get", session=key, fingerprint=fingerprint)["response"]["messages"]
    assert [m["id"] for m in shown] == [kept]


@pytest.mark.parametrize("style", STYLES)
def test_conversation_read_marks_its_texts_read(sim: SimulatorHandle, style: Style) -> None:
    key = login(sim.base_url, OPERATOR)
    sender = number()
    ids = [sim.inbound(LINE, sender, body)["id"] for body in ("a", "b")]
    fingerprint = get(sim, key, ids[0])["response"]["fingerprint"]
    assert unread(sim, key, fingerprint) == 2
    answer = style(sim.base_url, "conversation/read", {"session": key, "fingerprint": fingerprint})
    assert answer.json() == {"success": True, "response": True}
    assert unread(sim, key, fingerprint) == 0
    assert all(get(sim, key, i)["response"]["isRead"] for i in ids)


@pytest.mark.parametrize("style", STYLES)
def test_conversation_delete_removes_its_messages_from_lists(sim: SimulatorHandle, style: Style) -> None:
    key = login(sim.base_url, f"admin@{LINE}")
    to = number()
    ids = [send(sim, key, to, "first"), send(sim, key, to, "second")]
    fingerprint = get(sim, key, ids[0])["response"]["fingerprint"]
    answer = style(sim.base_url, "conversation/delete", {"session": key, "fingerprint": fingerprint})
    assert answer.json() == {"success": True, "response": True}
    assert conversation(sim, key, fingerprint) is None
    assert call(sim, "conversation/get", session=key, fingerprint=fingerprint)["success"] is False
    assert not set(ids) & set(listed_ids(sim, key))
    assert all(get(sim, key, i)["success"] is False for i in ids)


def test_operators_may_not_delete(sim: SimulatorHandle) -> None:
    key = login(sim.base_url, OPERATOR)
    message_id = send(sim, key, number(), "keep me")
    fingerprint = get(sim, key, message_id)["response"]["fingerprint"]
    assert call(sim, "message/delete", session=key, message=message_id)["success"] is False
    assert call(sim, "conversation/delete", session=key, fingerprint=fingerprint)["success"] is False
    assert get(sim, key, message_id)["success"] is True and message_id in listed_ids(sim, key)


def test_read_and_delete_webhooks_carry_the_changed_message(sim: SimulatorHandle) -> None:
    key = login(sim.base_url)
    with webhook_receiver() as receiver:
        for event in ("read", "delete"):
            hook = {"session": key, "type": "message", "event": event, "url": f"{receiver.url}/{event}"}
            assert call(sim, "webhook/add", **hook)["success"] is True
        message_id = sim.inbound(LINE, number(), "read then delete")["id"]
        call(sim, "message/read", session=key, message=message_id)
        call(sim, "message/delete", session=key, message=message_id)
        got = [receiver.received.get(timeout=10) for _ in range(2)]
        for hook_id in [h["webhookId"] for h in call(sim, "webhook/list", session=key)["response"]]:
            call(sim, "webhook/delete", session=key, webhookId=hook_id)
    payloads = {path: payload for path, payload, _ in got}
    assert set(payloads) == {"/read", "/delete"}
    assert all(str(p["id"]) == message_id and "success" not in p for p in payloads.values())
    assert payloads["/read"]["read"] is True and payloads["/delete"]["deleted"] is True


MESSAGE_SOURCES = ("message/list", "message/get", "conversation/get")


def shown_messages(sim: SimulatorHandle, key: str, ids: list[str], style: Style) -> list[dict[str, Any]]:
    """The messages as each reading call shows them, asked in the given style."""
    base, fingerprint = sim.base_url, get(sim, key, ids[0])["response"]["fingerprint"]
    listing = style(base, "message/list", {"session": key, "limit": 1000}).json()["response"]
    gets = [style(base, "message/get", {"session": key, "id": i}).json()["response"] for i in ids]
    talk = style(base, "conversation/get", {"session": key, "fingerprint": fingerprint}).json()
    return [
        *[m for m in listing if m["id"] in ids],
        *gets,
        *[m for m in talk["response"]["messages"] if m["id"] in ids],
    ]


@pytest.mark.parametrize("style", STYLES)
def test_messages_carry_the_contacts_names_number_and_from_name(sim: SimulatorHandle, style: Style) -> None:
    key = login(sim.base_url)
    other = number()
    ids = [
        sim.inbound(LINE, other, "hello shop")["id"],
        send(sim, key, other, "hello you", fromName="Front desk"),
    ]
    before = shown_messages(sim, key, ids, style)
    assert len(before) == 3 * len(ids)
    for message in before:
        assert (message["firstName"], message["lastName"]) == (None, None)  # no contact names yet
        assert message["mobileNumber"] == other
        assert message["fromName"] == ("Front desk" if message["type"] == "ZO" else None)
    saved = style(
        sim.base_url,
        "contact/save",
        {"session": key, "mobileNumber": other, "firstName": "John", "lastName": "Lauer"},
    )
    assert saved.json()["success"] is True
    for message in shown_messages(sim, key, ids, style):
        names = (message["firstName"], message["lastName"], message["mobileNumber"])
        assert names == ("John", "Lauer", other)


@pytest.mark.parametrize("style", STYLES)
def test_an_unknown_method_is_a_404_in_the_envelope(sim: SimulatorHandle, style: Style) -> None:
    answer = style(sim.base_url, "message/teleport", {"session": login(sim.base_url)})
    assert answer.status_code == 404
    assert answer.json()["success"] is False and isinstance(answer.json()["response"], str)


@pytest.mark.parametrize("http_method", ["PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["message/list", "user/login", "_sim/reset"])
def test_an_unsupported_http_method_is_a_405_in_the_envelope(
    sim: SimulatorHandle, http_method: str, path: str
) -> None:
    response = requests.request(http_method, sim.base_url + path, data={"session": "x"}, timeout=10)
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["success"] is False and isinstance(response.json()["response"], str)


def test_a_broken_multipart_body_is_a_400_in_the_envelope(sim: SimulatorHandle) -> None:
    response = requests.post(
        sim.base_url + "messaging/send",
        data=b"not multipart at all--xyz",
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
        timeout=10,
    )
    assert response.status_code == 400 and response.json()["success"] is False
