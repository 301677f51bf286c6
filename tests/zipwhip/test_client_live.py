"""The client against the running simulator over real HTTP: every call and every failure class."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.simulator import SimulatorHandle, run_simulator
from worker.zipwhip import ClientConfig, Upload, ZipwhipClient
from worker.zipwhip.errors import Classification, ErrorKind, ProviderError

LINE = "5556661234"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
_numbers = iter(range(2000, 3000))


def recipient() -> str:
    return f"+1206555{next(_numbers):04d}"


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorHandle]:
    with run_simulator("--slow-answer-s", "2", "--delivery-ms", "300") as handle:
        yield handle


@pytest.fixture(scope="module")
def client(simulator: SimulatorHandle) -> Iterator[ZipwhipClient]:
    client = ZipwhipClient(ClientConfig(base_url=simulator.base_url, read_timeout_s=0.5, connect_timeout_s=1))
    yield client
    client.close()


@pytest.fixture(scope="module")
def session(client: ZipwhipClient) -> str:
    return client.login(LINE, "demo")


def test_login_logout_and_a_dead_session(client: ZipwhipClient) -> None:
    key = client.login(f"operator@{LINE}", "demo")
    assert key.count(":") == 1 and len(key.split(":")[0]) == 36
    client.logout(key)
    with pytest.raises(ProviderError) as caught:
        client.list_messages(key)
    assert caught.value.classification is Classification.SESSION_INVALID
    with pytest.raises(ProviderError) as wrong:
        client.login(LINE, "wrong password")
    assert wrong.value.classification is Classification.PERMANENT


def test_sms_then_get_list_and_conversation(client: ZipwhipClient, session: str) -> None:
    to = recipient()
    receipt = client.send_sms(session, to, "hello there")
    assert int(receipt.message_id) > 2**53 and receipt.root == receipt.message_id
    got = client.get_message(session, receipt.message_id)
    assert (got.id, got.body, got.type, got.status_code) == (receipt.message_id, "hello there", "ZO", 1)
    time.sleep(0.4)
    assert client.get_message(session, receipt.message_id).status_code == 4
    page = client.list_messages(session, start=0, limit=5)
    assert page.messages[0].id == receipt.message_id and page.total >= 1
    conversation = client.get_conversation(session, receipt.fingerprint or "")
    assert conversation.messages[0].id == receipt.message_id
    assert any(
        c.fingerprint == receipt.fingerprint
        for c in client.list_conversations(session, limit=100).conversations
    )


def test_the_simulators_pacific_dates_read_as_utc_instants(client: ZipwhipClient, session: str) -> None:
    before = datetime.now(UTC)
    receipt = client.send_sms(session, recipient(), "what time is it")
    created = client.get_message(session, receipt.message_id).date_created
    assert created is not None and created.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= created <= datetime.now(UTC)


def test_an_sms_to_several_contacts_has_a_distinct_root(client: ZipwhipClient, session: str) -> None:
    receipt = client.send_sms(session, [recipient(), recipient()], "to both")
    assert len(receipt.tokens) == 2 and receipt.fingerprint is None
    assert receipt.root not in {t.message for t in receipt.tokens}


def test_mms_with_an_image_and_a_text_file(
    client: ZipwhipClient, session: str, simulator: SimulatorHandle
) -> None:
    to = recipient()
    files = [Upload("a.png", "image/png", PNG), Upload("rest.txt", "text/plain", b"the rest")]
    receipt = client.send_mms(session, to, "look", files)
    assert int(receipt.message_id) > 2**53 and receipt.status == "queued"
    assert client.get_message(session, receipt.message_id).has_attachment
    [sent] = [s for s in simulator.counters()["sends"] if s["to"] == to]
    assert len(sent["files"]) == 2


def test_webhooks_and_contacts_round_trip(client: ZipwhipClient, session: str) -> None:
    added = client.add_webhook(session, "message", "progress", "http://127.0.0.1:9/hook")
    hook = added[-1]
    assert hook.event == "progress"
    assert hook.webhook_id in {h.webhook_id for h in client.list_webhooks(session)}
    assert client.update_webhook(session, hook.webhook_id, "http://127.0.0.1:9/other")[0].url.endswith(
        "/other"
    )
    client.delete_webhook(session, hook.webhook_id)
    assert hook.webhook_id not in {h.webhook_id for h in client.list_webhooks(session)}
    contact = client.save_contact(session, recipient(), firstName="Ada")
    assert contact.first_name == "Ada"
    assert any(c.id == contact.id for c in client.list_contacts(session, page_size=1000).contacts)


def test_an_operator_may_send_but_not_manage_webhooks(client: ZipwhipClient) -> None:
    key = client.login(f"operator@{LINE}", "demo")
    client.send_sms(key, recipient(), "operators may send")
    with pytest.raises(ProviderError) as caught:
        client.list_webhooks(key)
    assert caught.value.classification is Classification.PERMANENT


@pytest.mark.parametrize(
    ("outcome", "kind", "classification", "code", "recorded"),
    [
        ("code:-855", ErrorKind.REJECTED, Classification.RETRYABLE, -855, False),
        ("code:-1", ErrorKind.REJECTED, Classification.RETRYABLE, -1, False),
        ("code:-703", ErrorKind.REJECTED, Classification.PERMANENT, -703, False),
        ("code:-1234", ErrorKind.OPTED_OUT, Classification.PERMANENT, -1234, False),
        ("http:500", ErrorKind.SERVER_ERROR, Classification.RETRYABLE, None, False),
        ("http:429", ErrorKind.THROTTLED, Classification.RETRYABLE, None, False),
        ("slow", ErrorKind.TIMED_OUT, Classification.AMBIGUOUS, None, True),
        ("drop_after_record", ErrorKind.TIMED_OUT, Classification.AMBIGUOUS, None, True),
        ("drop_before_record", ErrorKind.TIMED_OUT, Classification.AMBIGUOUS, None, False),
        ("html_200", ErrorKind.UNPARSEABLE, Classification.AMBIGUOUS, None, True),
        ("empty_200", ErrorKind.UNPARSEABLE, Classification.AMBIGUOUS, None, True),
        ("truncated_200", ErrorKind.UNPARSEABLE, Classification.AMBIGUOUS, None, True),
        ("missing_tokens", ErrorKind.UNPARSEABLE, Classification.AMBIGUOUS, None, True),
    ],
)
def test_every_fault_of_a_send_is_classified_over_http(
    client: ZipwhipClient,
    session: str,
    simulator: SimulatorHandle,
    outcome: str,
    kind: ErrorKind,
    classification: Classification,
    code: int | None,
    recorded: bool,
) -> None:
    to = recipient()
    simulator.script(to, outcomes=[outcome])
    with pytest.raises(ProviderError) as caught:
        client.send_sms(session, to, f"fault {outcome}")
    error = caught.value
    assert (error.kind, error.classification, error.code) == (kind, classification, code)
    assert session not in str(error)
    assert bool([s for s in simulator.counters()["sends"] if s["to"] == to]) is recorded


def test_numeric_ids_where_strings_are_expected_still_parse(
    client: ZipwhipClient, session: str, simulator: SimulatorHandle
) -> None:
    to = recipient()
    simulator.script(to, outcomes=["numeric_ids"])
    receipt = client.send_sms(session, to, "numbers")
    assert receipt.message_id.isdigit() and int(receipt.message_id) > 2**53


def test_limits_are_enforced(client: ZipwhipClient, session: str) -> None:
    with pytest.raises(ProviderError) as too_long:
        client.send_sms(session, recipient(), "x" * 601)
    assert too_long.value.code == -394
    with pytest.raises(ProviderError) as too_many:
        client.send_mms(session, recipient(), None, [Upload(f"{n}.png", "image/png", PNG) for n in range(3)])
    assert too_many.value.classification is Classification.PERMANENT
    with pytest.raises(ProviderError) as lying:
        client.send_mms(session, recipient(), None, [Upload("a.png", "image/png", b"not a png")])
    assert lying.value.classification is Classification.PERMANENT


def test_a_session_answered_invalid_with_200_or_403(
    simulator: SimulatorHandle, client: ZipwhipClient
) -> None:
    for status in (200, 403):
        simulator.set_faults(invalid_session_status=status)
        with pytest.raises(ProviderError) as caught:
            client.get_message("00000000-0000-4000-8000-000000000000:1", "1")
        assert caught.value.classification is Classification.SESSION_INVALID
        assert caught.value.http_status == status
    simulator.set_faults(invalid_session_status=401)
