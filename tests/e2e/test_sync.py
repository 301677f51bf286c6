"""`outbox sync` against the simulator: texts sent from the provider's own apps and texts received
while no webhook was registered become visible in the store, once each however often it runs, and
contacts are pushed when the setting asks for it."""

from __future__ import annotations

import json

import pytest

from tasks import InvalidMessage, send_message
from tests.e2e.conftest import DEMO_LINE, Deployment, fresh_recipient

pytestmark = pytest.mark.e2e


def test_sync_records_texts_from_other_apps_and_received_ones_once(deployment: Deployment) -> None:
    ours, elsewhere, customer = fresh_recipient(), fresh_recipient(), fresh_recipient()
    ours_id = send_message(DEMO_LINE, ours, "Sent through the outbox")
    deployment.wait_final(ours_id)
    key = deployment.runtime.client.login(DEMO_LINE, "demo")  # the provider's own app, not us
    deployment.runtime.client.send_sms(key, elsewhere, "Typed in the provider's web app")
    deployment.simulator.inbound(DEMO_LINE, customer, "Thanks, got it")

    first = deployment.cli("sync", DEMO_LINE)
    assert " 0 new" not in first, first
    texts = json.loads(deployment.cli("inbox", DEMO_LINE, "--all", "--json"))
    mine = {(t["direction"], t["to"] if t["direction"] == "out" else t["from"], t["body"]) for t in texts}
    assert ("out", elsewhere, "Typed in the provider's web app") in mine
    assert ("in", customer, "Thanks, got it") in mine
    assert not any(ours in (t["from"], t["to"]) for t in texts)  # our own parts are not copied

    again = deployment.cli("sync", DEMO_LINE)
    assert ": 0 new" in again, again
    assert len(json.loads(deployment.cli("inbox", DEMO_LINE, "--all", "--json"))) == len(texts)


def test_sync_pushes_contacts_when_asked(deployment: Deployment) -> None:
    to = fresh_recipient()
    deployment.wait_final(send_message(DEMO_LINE, to, "Save me as a contact"))
    before = deployment.simulator.counters()["calls"].get("contact/save", 0)
    report = deployment.cli("sync", DEMO_LINE, env={"OUTBOX_PUSH_CONTACTS": "true"})
    pushed = deployment.simulator.counters()["calls"].get("contact/save", 0) - before
    assert pushed >= 1 and f"{pushed} contacts pushed" in report
    key = deployment.runtime.client.login(DEMO_LINE, "demo")
    numbers = {c.mobile_number for c in deployment.runtime.client.list_contacts(key, 1, 500).contacts}
    assert to in numbers or to.lstrip("+1") in numbers


def test_sync_leaves_the_newest_consent_word_in_force(deployment: Deployment) -> None:
    number = fresh_recipient()
    deployment.simulator.inbound(DEMO_LINE, number, "START")
    deployment.simulator.inbound(DEMO_LINE, number, "STOP")  # the newest: read first by a sync
    deployment.cli("sync", DEMO_LINE)
    opted_out = {row["number"] for row in json.loads(deployment.cli("optouts", DEMO_LINE, "--json"))}
    assert number in opted_out
    with pytest.raises(InvalidMessage, match="opted out"):
        send_message(DEMO_LINE, number, "Texting someone who said STOP")
