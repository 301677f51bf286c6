"""Webhooks, opt-outs and inbound texts with the simulator delivering real webhooks to the real web
process: final statuses arrive with no polling, forged and replayed calls change nothing, STOP and
START take effect, received texts are recorded and handed to the application."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import func
from sqlmodel import Session, select

from tasks import InvalidMessage, send_message
from tests.e2e.conftest import DEMO_LINE, Deployment, deploy, fresh_recipient
from tests.support.simulator import SimulatorHandle, run_simulator
from tests.support.stack import wait_for
from worker.inbound.webhooks import hook_token, register_webhooks
from worker.infra.runtime import Runtime
from worker.store.models import Part, ProviderMessageRow, StatusEvent

pytestmark = pytest.mark.e2e
SECRET = "test-webhook-secret-key"
LINE = "+1" + DEMO_LINE


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorHandle]:
    with run_simulator("--delivery-ms", "300") as handle:
        yield handle


@pytest.fixture(scope="module")
def hooked(
    broker_url: str, simulator: SimulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("hooked")
    env = {
        "OUTBOX_WEBHOOK_SECRET_KEY": SECRET,
        "OUTBOX_POLL_DELAYS_S": "[60]",  # polling would come far too late: any final status is a webhook's
        "OUTBOX_INBOUND_HOOK": "tests.support.callbacks:record_inbound",
        "OUTBOX_TEST_INBOUND_FILE": str(workdir / "inbound.jsonl"),
    }
    with deploy("postgres", broker_url, simulator, workdir, env, web=True) as running:
        admin = running.runtime.client.login(f"admin@{DEMO_LINE}", "demo")
        register_webhooks(running.runtime, admin, LINE, running.web_url)
        yield running


def _hook(deployment: Deployment, event: str, type_: str = "message", token: str | None = None) -> str:
    token = token or hook_token(SECRET, LINE)
    return f"{deployment.web_url}/hooks/{LINE.lstrip('+')}/{token}/{type_}/{event}"


def _events(deployment: Deployment) -> int:
    with Session(deployment.runtime.engine) as session:
        return int(session.exec(select(func.count()).select_from(StatusEvent)).one())


def test_final_statuses_arrive_by_webhook_with_no_polling(hooked: Deployment) -> None:
    before = hooked.simulator.counters()["calls"]
    ids = [send_message(DEMO_LINE, fresh_recipient(), f"Webhook me {n}") for n in range(10)]
    reports = [hooked.wait_final(i, timeout_s=20) for i in ids]
    assert {r["state"] for r in reports} == {"delivered"}
    for report in reports:
        assert [e["source"] for e in report["history"] if e["state"] == "delivered"] == ["webhook"]
    after = hooked.simulator.counters()["calls"]
    sends = after["message/send"] - before.get("message/send", 0)
    gets = after.get("message/get", 0) - before.get("message/get", 0)
    assert (sends, gets) == (10, 0)  # one provider call per delivered SMS


def test_forged_calls_are_refused_and_change_nothing(hooked: Deployment) -> None:
    before = _events(hooked)
    payload = {"id": 1, "statusCode": 5, "messageStatus": 1106}
    assert (
        requests.post(_hook(hooked, "progress", token="0" * 40), json=payload, timeout=5).status_code == 404
    )
    assert (
        requests.post(
            _hook(hooked, "progress").replace(DEMO_LINE, "2065551234"), json=payload, timeout=5
        ).status_code
        == 404
    )
    assert requests.post(_hook(hooked, "nonsense"), json=payload, timeout=5).status_code == 404
    assert requests.post(_hook(hooked, "progress"), data=b"<html>", timeout=5).status_code == 400
    assert requests.post(_hook(hooked, "progress"), json={"statusCode": 4}, timeout=5).status_code == 400
    assert _events(hooked) == before


def test_duplicate_and_out_of_order_events_never_move_a_status_backwards(hooked: Deployment) -> None:
    message_id = send_message(DEMO_LINE, fresh_recipient(), "Replay me")
    report = hooked.wait_final(message_id)
    provider_id = int(report["parts"][0]["provider_id"])
    before = _events(hooked)
    for status_code, message_status in ((4, 1003), (2, 1001), (1, 999), (5, 1106), (4, 1003)):
        payload = {"id": provider_id, "statusCode": status_code, "messageStatus": message_status}
        assert requests.post(_hook(hooked, "progress"), json=payload, timeout=5).status_code == 200
    after = hooked.report(message_id)
    assert after["state"] == "delivered" and after["parts"][0]["status_code"] == 4
    assert _events(hooked) == before


def test_stop_stops_sends_and_start_restores_them(hooked: Deployment) -> None:
    number = fresh_recipient()
    hooked.simulator.inbound(DEMO_LINE, number, "STOP")

    def refused() -> bool:
        try:
            send_message(DEMO_LINE, number, "Still there?")
        except InvalidMessage:
            return True
        return False

    wait_for(refused, 15, 0.3, "STOP to reach the suppression list")
    hooked.simulator.inbound(DEMO_LINE, number, "start")
    wait_for(lambda: not _opted_out(hooked, number), 15, 0.3, "START to lift it")
    assert hooked.wait_final(send_message(DEMO_LINE, number, "Welcome back"))["state"] == "delivered"


def test_a_replayed_or_late_start_never_undoes_a_later_stop(hooked: Deployment) -> None:
    number = fresh_recipient()
    start_id = hooked.simulator.inbound(DEMO_LINE, number, "START")["id"]
    wait_for(lambda: _recorded(hooked, start_id), 15, 0.3, "the START to be recorded")
    hooked.simulator.inbound(DEMO_LINE, number, "STOP")
    wait_for(lambda: _opted_out(hooked, number), 15, 0.3, "STOP to reach the suppression list")
    start = _provider_object(hooked, start_id)
    late = {**start, "id": int(start_id) + 7_000_000}  # the same old START, first seen only now
    for payload, (type_, event) in [
        (start, ("message", "receive")),  # the provider retries an old delivery
        (start, ("optout", "change")),
        (late, ("message", "receive")),  # a delivery that was lost until now
    ]:
        assert requests.post(_hook(hooked, event, type_), json=payload, timeout=5).status_code == 200
    assert _opted_out(hooked, number)
    with pytest.raises(InvalidMessage, match="opted out"):
        send_message(DEMO_LINE, number, "Texting someone who said STOP")


def _recorded(deployment: Deployment, provider_id: str) -> bool:
    with Session(deployment.runtime.engine) as session:
        query = select(ProviderMessageRow.id).where(ProviderMessageRow.provider_id == provider_id)
        return session.exec(query).first() is not None


def _provider_object(deployment: Deployment, provider_id: str) -> dict[str, object]:
    """The message as the provider shows it, in the webhook's shape (the id a JSON number)."""
    key = deployment.simulator.login(DEMO_LINE, "demo")
    answer = requests.post(
        deployment.simulator.base_url + "message/get", data={"session": key, "id": provider_id}, timeout=5
    ).json()
    return {**answer["response"], "id": int(provider_id)}


def _opted_out(deployment: Deployment, number: str) -> bool:
    return number in {row["number"] for row in json.loads(deployment.cli("optouts", DEMO_LINE, "--json"))}


def test_inbound_texts_are_recorded_once_and_handed_to_the_application(hooked: Deployment) -> None:
    number = fresh_recipient()
    hooked.simulator.inbound(DEMO_LINE, number, "Is my order ready?")
    inbound_file = Path(hooked.stack.env["OUTBOX_TEST_INBOUND_FILE"])

    def heard() -> list[dict[str, object]] | None:
        if not inbound_file.exists():
            return None
        texts = [json.loads(line) for line in inbound_file.read_text().splitlines()]
        return [t for t in texts if t["from"] == number] or None

    [text] = wait_for(heard, 15, 0.3, "the inbound hook")
    assert text["body"] == "Is my order ready?" and text["line"] == LINE
    inbox = json.loads(hooked.cli("inbox", DEMO_LINE, "--json"))
    assert [t["body"] for t in inbox if t["from"] == number] == ["Is my order ready?"]


def test_registering_again_adds_nothing_and_a_new_key_updates_the_urls(hooked: Deployment) -> None:
    admin = hooked.runtime.client.login(f"admin@{DEMO_LINE}", "demo")
    first = hooked.runtime.client.list_webhooks(admin)
    printed = hooked.cli(
        *("line", "webhooks", DEMO_LINE, "--public-url", hooked.web_url, "--username", f"admin@{DEMO_LINE}"),
        env={"OUTBOX_LINE_PASSWORD": "demo"},
    )
    assert printed.count("/hooks/...") == 4 and hook_token(SECRET, LINE) not in printed
    again = hooked.runtime.client.list_webhooks(admin)
    assert len(first) == 4 and {(h.webhook_id, h.url) for h in first} == {
        (h.webhook_id, h.url) for h in again
    }

    new_key = hooked.runtime.settings.model_copy(update={"webhook_secret_key": "another-key"})
    rotated = register_webhooks(Runtime(new_key), admin, LINE, hooked.web_url)
    assert {h.webhook_id for h in rotated} == {h.webhook_id for h in first}  # updated, not added
    assert all(hook_token("another-key", LINE) in h.url for h in rotated)
    register_webhooks(hooked.runtime, admin, LINE, hooked.web_url)  # back to the deployment's key


def test_a_send_event_settles_an_unknown_outcome_without_a_resend(hooked: Deployment) -> None:
    to = fresh_recipient()
    hooked.simulator.script(to, outcomes=["drop_after_record"])
    message_id = send_message(DEMO_LINE, to, "Lost answer, found by webhook")
    report = hooked.wait_final(message_id, timeout_s=30)
    assert report["state"] == "delivered"
    assert [s["count"] for s in hooked.sends_to(to)] == [1]
    with Session(hooked.runtime.engine) as session:
        assert session.exec(select(Part.attempts).where(Part.message_id == message_id)).one() == 1


def test_a_message_queued_before_a_stop_ends_rejected_without_a_provider_call(hooked: Deployment) -> None:
    number = fresh_recipient()
    message_id = send_message(
        DEMO_LINE, number, "Sent later", send_at=datetime.now(UTC) + timedelta(seconds=4)
    )
    hooked.simulator.inbound(DEMO_LINE, number, "Stop.")
    wait_for(lambda: _opted_out(hooked, number), 15, 0.3, "STOP to reach the suppression list")
    report = hooked.wait_final(message_id, timeout_s=30)
    assert report["state"] == "rejected" and "opted out" in (report["error"]["description"] or "")
    assert hooked.sends_to(number) == []


def test_the_provider_opt_out_answer_and_status_feed_the_suppression_list(hooked: Deployment) -> None:
    refused, reported = fresh_recipient(), fresh_recipient()
    hooked.simulator.script(refused, outcomes=["code:-1234"])
    hooked.simulator.script(reported, delivery={"statusCode": 5, "messageStatus": 1110})
    first = hooked.wait_final(send_message(DEMO_LINE, refused, "Are you there?"))
    second = hooked.wait_final(send_message(DEMO_LINE, reported, "Are you there?"))
    assert (first["state"], second["state"]) == ("rejected", "failed")
    assert _opted_out(hooked, refused) and _opted_out(hooked, reported)
    for number in (refused, reported):
        with pytest.raises(InvalidMessage, match="opted out"):
            send_message(DEMO_LINE, number, "Once more")
