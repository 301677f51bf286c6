"""A contract suite written only from docs/provider/zipwhip-api.md, with raw HTTP (no project code),
run against the simulator: what any existing Zipwhip client relies on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.contract.raw import LINE, PASSWORD, STYLES, Receiver, Style, login, webhook_receiver
from tests.support.simulator import SimulatorHandle, run_simulator

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PACIFIC = ZoneInfo("America/Los_Angeles")
_numbers = iter(range(3000, 4000))


def recipient() -> str:
    return f"206555{next(_numbers):04d}"  # 10-digit US form, as the contract allows


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with run_simulator("--delivery-ms", "400") as handle:
        yield handle


def assert_pacific(written: str) -> None:
    """A date as the live service wrote it: ISO-8601 in US Pacific time, its offset included."""
    when = datetime.fromisoformat(written)
    assert when.utcoffset() == when.astimezone(PACIFIC).utcoffset()
    assert when.utcoffset() in (timedelta(hours=-7), timedelta(hours=-8))
    assert abs(datetime.now(PACIFIC) - when) < timedelta(minutes=5)


@pytest.mark.parametrize("style", STYLES)
def test_login_answers_a_uuid_and_device_session_key(sim: SimulatorHandle, style: Style) -> None:
    key = login(sim.base_url, style=style)
    uuid_part, device = key.split(":")
    assert len(uuid_part) == 36 and device.isdigit()


def test_the_oldest_clients_mobile_number_alias_logs_in(sim: SimulatorHandle) -> None:
    answer = requests.post(
        sim.base_url + "user/login", data={"mobileNumber": LINE, "password": PASSWORD}
    ).json()
    assert answer["success"] is True


def test_a_wrong_password_is_a_text_failure(sim: SimulatorHandle) -> None:
    answer = requests.post(sim.base_url + "user/login", data={"username": LINE, "password": "nope"}).json()
    assert answer["success"] is False and isinstance(answer["response"], str)


@pytest.mark.parametrize("style", STYLES)
def test_message_send_tokens_carry_string_ids_above_2_53(sim: SimulatorHandle, style: Style) -> None:
    key = login(sim.base_url)
    response = style(sim.base_url, "message/send", {"session": key, "contacts": recipient(), "body": "hi"})
    answer = response.json()
    assert answer["success"] is True
    token = answer["response"]["tokens"][0]
    assert isinstance(token["message"], str) and int(token["message"]) > 2**53
    assert answer["response"]["root"] == token["message"]
    assert f'"message":"{token["message"]}"' in response.text.replace(" ", "")


def test_repeated_contacts_make_one_token_each_and_a_distinct_root(sim: SimulatorHandle) -> None:
    key = login(sim.base_url)
    body = f"session={key}&contacts={recipient()}&contacts=%2B1{recipient()}&body=both"
    answer = requests.post(
        sim.base_url + "message/send",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ).json()
    response = answer["response"]
    assert len(response["tokens"]) == 2 and response["fingerprint"] is None
    assert response["root"] not in {t["message"] for t in response["tokens"]}


def test_messaging_send_answers_a_numeric_id(sim: SimulatorHandle) -> None:
    key = login(sim.base_url)
    response = requests.post(
        sim.base_url + "messaging/send",
        params={"session": key, "to": "+1" + recipient()},  # query-string fields with multipart files
        files={"image": ("a.png", PNG, "image/png")},
        timeout=10,
    )
    answer = response.json()
    assert answer["success"] is True and answer["response"]["status"] == "queued"
    assert isinstance(answer["response"]["id"], int) and answer["response"]["id"] > 2**53
    assert f'"id":{answer["response"]["id"]}' in response.text.replace(" ", "")


def test_both_failure_shapes(sim: SimulatorHandle) -> None:
    key = login(sim.base_url)
    text = requests.post(sim.base_url + "message/send", data={"session": key, "contacts": recipient()}).json()
    assert text == {"success": False, "response": "Required String parameter 'body' is not present"}
    coded = requests.post(
        sim.base_url + "message/send", data={"session": key, "contacts": recipient(), "body": "é" * 301}
    )
    assert coded.status_code == 400
    assert coded.json()["success"] is False and coded.json()["response"]["code"] == -394
    assert isinstance(coded.json()["response"]["desc"], str)


@pytest.mark.parametrize("style", STYLES)
def test_an_unknown_session_is_refused_with_401(sim: SimulatorHandle, style: Style) -> None:
    response = style(sim.base_url, "message/list", {"session": "nope:1"})
    assert response.status_code == 401
    assert response.json() == {"success": False, "response": "Invalid session"}


def test_a_logged_out_session_stops_working(sim: SimulatorHandle) -> None:
    key = login(sim.base_url)
    assert requests.post(sim.base_url + "user/logout", data={"session": key}).json()["success"] is True
    assert requests.post(sim.base_url + "message/list", data={"session": key}).status_code == 401


def test_message_get_and_list_show_the_message_object(sim: SimulatorHandle) -> None:
    key = login(sim.base_url)
    number = recipient()
    sent = requests.post(
        sim.base_url + "message/send", data={"session": key, "contacts": number, "body": "obj"}
    ).json()
    message_id = sent["response"]["tokens"][0]["message"]
    got = requests.get(sim.base_url + "message/get", params={"session": key, "id": message_id}).json()[
        "response"
    ]
    message_fields = (
        "id fingerprint address sourceAddress destAddress body bodySize hasAttachment dateCreated"
        " lastUpdated statusCode statusDesc messageStatus isInFinalState transmissionState type deviceId"
        " contactId isRead deleted visible"
    )
    for field in message_fields.split():
        assert field in got, field
    assert got["id"] == message_id and got["address"] == "ptn:/" + number and got["type"] == "ZO"
    assert got["transmissionState"]["name"] in {"PREPPING", "ACCEPTED", "QUEUED", "DELIVERED", "ERROR"}
    assert_pacific(got["dateCreated"])
    assert_pacific(got["lastUpdated"])
    listing = requests.post(
        sim.base_url + "message/list", data={"session": key, "start": 0, "limit": 2}
    ).json()
    assert listing["response"][0]["id"] == message_id  # newest first
    assert listing["size"] == 2 and listing["total"] >= 2


def test_conversation_get_and_list(sim: SimulatorHandle) -> None:
    key = login(sim.base_url)
    sent = requests.post(
        sim.base_url + "message/send", data={"session": key, "contacts": recipient(), "body": "c"}
    )
    fingerprint = sent.json()["response"]["fingerprint"]
    got = requests.post(
        sim.base_url + "conversation/get", data={"session": key, "fingerprint": fingerprint}
    ).json()
    assert set(got["response"]) == {"conversation", "messages"}
    listing = requests.post(
        sim.base_url + "conversation/list", data={"session": key, "start": 0, "limit": 5}
    ).json()
    assert {"total", "size"} <= set(listing)
    assert_pacific(got["response"]["conversation"]["lastMessageDate"])
    assert_pacific(listing["response"][0]["lastMessageDate"])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


def test_webhooks_are_registered_and_delivered_flat(sim: SimulatorHandle, receiver: Receiver) -> None:
    key = login(sim.base_url, f"admin@{LINE}")
    added = requests.post(
        sim.base_url + "webhook/add",
        data={"session": key, "type": "message", "event": "progress", "url": receiver.url + "/progress"},
    ).json()
    assert isinstance(added["response"], list) and "webhookId" in added["response"][0]
    receiver.fail_first[0] = 1  # the first delivery fails: the simulator must retry it
    number = recipient()
    requests.post(
        sim.base_url + "message/send", data={"session": key, "contacts": number, "body": "track me"}
    )
    codes = []
    while 4 not in codes:
        path, payload, raw = receiver.received.get(timeout=10)
        assert path == "/progress" and "success" not in payload  # no envelope
        assert isinstance(payload["id"], int) and f'"id": {payload["id"]}' in raw.replace('"id":', '"id": ')
        assert payload["finalDestination"].endswith(number) and payload["messageType"] == "ZO"
        assert_pacific(payload["dateCreated"])
        codes.append(payload["statusCode"])
    assert codes[-1] == 4 and set(codes) <= {1, 2, 4}
    hook_id = added["response"][-1]["webhookId"]
    listed = requests.post(sim.base_url + "webhook/list", data={"session": key}).json()["response"]
    assert any(h["webhookId"] == hook_id for h in listed)
    deleted = requests.post(
        sim.base_url + "webhook/delete", data={"session": key, "webhookId": hook_id}
    ).json()
    assert deleted == {"success": True, "response": []}


def test_operators_may_only_send_and_receive(sim: SimulatorHandle) -> None:
    key = login(sim.base_url, f"operator@{LINE}")
    sent = requests.post(
        sim.base_url + "message/send", data={"session": key, "contacts": recipient(), "body": "op"}
    )
    assert sent.json()["success"] is True
    refused = requests.post(sim.base_url + "webhook/list", data={"session": key}).json()
    assert refused["success"] is False


def test_contacts_save_and_list_with_paging(sim: SimulatorHandle) -> None:
    key = login(sim.base_url)
    saved = requests.post(
        sim.base_url + "contact/save", data={"session": key, "mobileNumber": recipient(), "firstName": "Ada"}
    ).json()
    assert saved["success"] is True and saved["response"]["firstName"] == "Ada"
    listing = requests.post(
        sim.base_url + "contact/list", data={"session": key, "page": 1, "pageSize": 2}
    ).json()
    assert {"total", "page", "pages"} <= set(listing) and len(listing["response"]) <= 2


def test_mms_limits(sim: SimulatorHandle) -> None:
    key = login(sim.base_url)
    url = sim.base_url + "messaging/send"
    fields = {"session": (None, key), "to": (None, "+1" + recipient())}
    three = requests.post(
        url, files=[*fields.items(), *[(f"image{n}", (f"{n}.png", PNG, "image/png")) for n in range(3)]]
    )
    wrong_type = requests.post(
        url, files=[*fields.items(), ("file", ("a.pdf", b"%PDF-1.4", "application/pdf"))]
    )
    big = requests.post(
        url, files=[*fields.items(), ("image", ("big.png", PNG + b"\x00" * 620_000, "image/png"))]
    )
    for response in (three, wrong_type, big):
        assert response.json()["success"] is False


def test_stop_blocks_sends_with_minus_1234_until_unstop(sim: SimulatorHandle) -> None:
    key = login(sim.base_url)
    number = recipient()
    sim.inbound(LINE, number, "STOP")
    blocked = requests.post(
        sim.base_url + "message/send", data={"session": key, "contacts": number, "body": "x"}
    )
    assert blocked.json()["response"]["code"] == -1234
    sim.inbound(LINE, number, "UNSTOP")
    allowed = requests.post(
        sim.base_url + "message/send", data={"session": key, "contacts": number, "body": "x"}
    )
    assert allowed.json()["success"] is True
