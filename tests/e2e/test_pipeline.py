"""The pipeline end to end: real Redis, real `celery worker` and `beat`, the simulator over HTTP,
on SQLite and on PostgreSQL. Each test texts its own recipient, so the simulator's counters for
that recipient say exactly what reached the provider."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update
from sqlmodel import Session, col

from tasks import InvalidMessage, send_message, send_messages
from tests.e2e.conftest import DEMO_LINE, DEMO_PASSWORD, Deployment, fresh_recipient, image
from tests.support.stack import wait_for
from worker.lines import list_lines, login_line
from worker.planning import FileInput
from worker.store.models import Line, Message, Part
from worker.zipwhip.errors import Classification, ProviderError

pytestmark = pytest.mark.e2e


def states(report: dict) -> list[str]:
    return [event["state"] for event in report["history"]]


def test_an_sms_is_delivered(deployment: Deployment) -> None:
    to = fresh_recipient()
    message_id = send_message(DEMO_LINE, to, "Your order #1234 shipped today.")
    report = deployment.wait_final(message_id)
    assert report["state"] == "delivered"
    [part] = report["parts"]
    assert part["kind"] == "sms" and part["provider_id"] and part["status_code"] in (0, 4, 6)
    assert states(report)[:4] == ["queued", "sending", "sent", "sent"] or "sent" in states(report)
    assert [s["count"] for s in deployment.sends_to(to)] == [1]


def test_a_blast_from_send_messages_goes_out_in_batches_and_each_text_once(deployment: Deployment) -> None:
    _line_rate(deployment, 0.0)  # unlimited, so that the release job may put many texts in one task
    try:
        recipients = [fresh_recipient() for _ in range(60)]
        ids = send_messages(
            {"line": DEMO_LINE, "to": to, "body": f"Your order {n} shipped"}
            for n, to in enumerate(recipients)
        )
        for message_id in ids:
            assert deployment.wait_final(message_id)["state"] == "delivered"
    finally:
        _line_rate(deployment, None)
    assert all([s["count"] for s in deployment.sends_to(to)] == [1] for to in recipients)
    batches = re.findall(
        r"outbox\.send\[[^]]+\] succeeded in [^:]+: '(\d+) messages \(\d+ normal\): (\d+) sent",
        _worker_log(deployment),
    )
    assert batches and max(int(sent) for _, sent in batches) > 3, batches  # several texts shared a task


def _line_rate(deployment: Deployment, rate: float | None) -> None:
    with Session(deployment.runtime.engine) as session:
        session.execute(update(Line).where(col(Line.phone) == "+1" + DEMO_LINE).values(rate_per_s=rate))
        session.commit()


def _worker_log(deployment: Deployment) -> str:
    return "".join(
        deployment.stack.log(name) for name in deployment.stack.processes if name.startswith("worker")
    )


def test_a_2000_byte_text_is_delivered_as_one_mms_with_a_txt(deployment: Deployment) -> None:
    to = fresh_recipient()
    body = "lorem ipsum dolor sit amet " * 74  # 1,998 bytes
    message_id = send_message(DEMO_LINE, to, body)
    report = deployment.wait_final(message_id)
    assert report["state"] == "delivered"
    [part] = report["parts"]
    assert part["kind"] == "mms"
    assert [(f["type"], f["from_body"]) for f in part["files"]] == [("text/plain", True)]
    [sent] = deployment.sends_to(to)
    assert sent["count"] == 1 and len(sent["files"]) == 1 and len(sent["body"].encode()) <= 600


def test_an_mms_with_two_images_is_delivered(deployment: Deployment) -> None:
    to = fresh_recipient()
    message_id = send_message(DEMO_LINE, to, "Two pictures", [image("png"), image("jpg")])
    report = deployment.wait_final(message_id)
    assert report["state"] == "delivered"
    [part] = report["parts"]
    assert part["kind"] == "mms" and [f["type"] for f in part["files"]] == ["image/png", "image/jpeg"]
    assert [len(s["files"]) for s in deployment.sends_to(to)] == [2]


def test_three_images_go_as_two_mms_in_order(deployment: Deployment) -> None:
    to = fresh_recipient()
    pictures = [image("png"), image("jpg"), image("gif")]
    message_id = send_message(DEMO_LINE, to, "Three pictures", pictures)
    report = deployment.wait_final(message_id)
    assert report["state"] == "delivered"
    first, second = report["parts"]
    assert (first["kind"], second["kind"]) == ("mms", "mms")
    assert [f["type"] for f in first["files"] + second["files"]] == ["image/png", "image/jpeg", "image/gif"]
    assert first["sent_at"] < second["sent_at"]
    sent_events = [(e["part"], e["state"]) for e in report["history"] if e["state"] in ("sending", "sent")]
    assert sent_events.index((1, "sent")) < sent_events.index((2, "sending"))
    assert len(deployment.sends_to(to)) == 2


def test_stop_rejects_the_message_and_every_later_one_without_a_provider_call(deployment: Deployment) -> None:
    to = fresh_recipient()
    deployment.simulator.script(to, outcomes=["code:-1234", "ok", "ok"])
    # One call records both before either is sent (two calls race the first's at-commit dispatch and
    # its STOP answer); the second waits behind the first: same recipient.
    first, second = send_messages(
        [{"line": DEMO_LINE, "to": to, "body": "Hello"}, {"line": DEMO_LINE, "to": to, "body": "Hello again"}]
    )
    report = deployment.wait_final(first)
    assert report["state"] == "rejected" and report["error"]["code"] == -1234
    later = deployment.wait_final(second)
    assert later["state"] == "rejected"
    assert later["parts"][0]["attempts"] == 0  # rejected before any provider call
    with pytest.raises(InvalidMessage, match="opted out"):
        send_message(DEMO_LINE, to, "Are you there?")
    assert deployment.sends_to(to) == []  # an "ok" was waiting: any call would have been accepted


def test_a_retryable_error_is_retried_then_delivered(deployment: Deployment) -> None:
    to = fresh_recipient()
    deployment.simulator.script(to, outcomes=["code:-855", "ok"])
    message_id = send_message(DEMO_LINE, to, "Retry me")
    report = deployment.wait_final(message_id)
    assert report["state"] == "delivered"
    assert report["parts"][0]["attempts"] == 2
    assert "retrying" in states(report)
    assert [s["count"] for s in deployment.sends_to(to)] == [1]


def test_a_permanent_error_fails_without_retry(deployment: Deployment) -> None:
    to = fresh_recipient()
    deployment.simulator.script(to, outcomes=["code:-703", "ok"])
    message_id = send_message(DEMO_LINE, to, "Bad argument")
    report = deployment.wait_final(message_id)
    assert report["state"] == "failed" and report["error"]["code"] == -703
    time.sleep(1.5)  # give a wrong retry every chance to happen
    assert deployment.report(message_id)["parts"][0]["attempts"] == 1
    assert deployment.sends_to(to) == []


def test_a_carrier_failure_ends_failed_with_its_reason(deployment: Deployment) -> None:
    to = fresh_recipient()
    deployment.simulator.script(to, delivery={"statusCode": 5, "messageStatus": 1106})
    message_id = send_message(DEMO_LINE, to, "Nowhere to go")
    report = deployment.wait_final(message_id)
    assert report["state"] == "failed"
    part = report["parts"][0]
    assert (part["status_code"], part["message_status"]) == (5, 1106)
    assert "No Valid Route" in report["error"]["description"]


@pytest.mark.parametrize("fault", ["slow", "drop_after_record", "drop_before_record"])
def test_an_ambiguous_send_reaches_the_provider_exactly_once(deployment: Deployment, fault: str) -> None:
    to = fresh_recipient()
    deployment.simulator.script(to, outcomes=[fault, "ok"])
    message_id = send_message(DEMO_LINE, to, f"Maybe sent ({fault})")
    report = deployment.wait_final(message_id, timeout_s=45)
    assert report["state"] == "delivered"
    assert "unknown" in states(report)
    assert [s["count"] for s in deployment.sends_to(to)] == [1]


def test_the_same_idempotency_key_sends_once(deployment: Deployment) -> None:
    to = fresh_recipient()
    key = f"order-{to}"
    first = send_message(DEMO_LINE, to, "Once only", idempotency_key=key)
    second = send_message(DEMO_LINE, to, "Once only", idempotency_key=key)
    assert first == second
    assert deployment.wait_final(first)["state"] == "delivered"
    assert [s["count"] for s in deployment.sends_to(to)] == [1]


def test_one_poison_text_in_a_batch_is_quarantined_and_the_rest_go(deployment: Deployment) -> None:
    recipients = [fresh_recipient() for _ in range(8)]
    later = datetime.now(UTC) + timedelta(hours=1)
    ids = send_messages(
        {"line": DEMO_LINE, "to": to, "body": f"Batch mate {n}", "send_at": later}
        for n, to in enumerate(recipients)
    )
    poison = ids[3]
    with Session(deployment.runtime.engine) as session:  # a row our code cannot read (a bug, bad data)
        session.execute(text("UPDATE message SET state = 'bogus' WHERE id = :id"), {"id": poison})
        now = datetime.now(UTC)  # then all eight come due together: one batch, one task
        session.execute(update(Message).where(col(Message.id).in_(ids)).values(send_at=now))
        session.execute(update(Part).where(col(Part.message_id).in_(ids)).values(due_at=now))
        session.commit()
    reports = {i: deployment.wait_final(i, timeout_s=60) for i in ids}
    assert {i: r["state"] for i, r in reports.items() if i != poison} == dict.fromkeys(
        set(ids) - {poison}, "delivered"
    )
    assert reports[poison]["state"] == "failed"
    assert "could not be claimed" in reports[poison]["error"]["description"]
    assert deployment.sends_to(recipients[3]) == []
    assert "one by one" in deployment.stack.log("worker1")  # they did share a task


def test_a_message_not_yet_sent_can_be_cancelled(deployment: Deployment) -> None:
    to = fresh_recipient()
    waiting = send_message(DEMO_LINE, to, "Never mind", send_at=datetime.now(UTC) + timedelta(hours=1))
    gone = send_message(DEMO_LINE, fresh_recipient(), "Too late to call back")
    deployment.wait_final(gone)
    answer = json.loads(deployment.cli("cancel", str(waiting), str(gone), "--json"))
    assert answer == {"cancelled": [waiting], "not_cancelled": [gone]}
    report = deployment.report(waiting)
    assert report["state"] == "rejected" and report["error"]["description"] == "cancelled"
    assert f"{waiting} rejected" in deployment.hook_calls() and deployment.sends_to(to) == []


def test_logging_a_line_in_again_logs_the_replaced_key_out(deployment: Deployment) -> None:
    runtime = deployment.runtime
    old = next(line.session_key for line in list_lines(runtime) if line.phone == "+1" + DEMO_LINE)
    assert old and runtime.client.list_messages(old, limit=1)  # it works until replaced
    login_line(runtime, DEMO_LINE, None, DEMO_PASSWORD)
    with pytest.raises(ProviderError) as refused:
        runtime.client.list_messages(old, limit=1)
    assert refused.value.classification is Classification.SESSION_INVALID
    assert (
        deployment.wait_final(send_message(DEMO_LINE, fresh_recipient(), "New key"))["state"] == "delivered"
    )


def test_a_scheduled_message_waits_for_its_time(deployment: Deployment) -> None:
    to = fresh_recipient()
    send_at = datetime.now(UTC) + timedelta(seconds=3)
    message_id = send_message(DEMO_LINE, to, "Later", send_at=send_at)
    time.sleep(1.5)
    assert deployment.report(message_id)["state"] == "queued"
    report = deployment.wait_final(message_id)
    assert report["state"] == "delivered"
    assert datetime.fromisoformat(report["parts"][0]["sent_at"]) >= send_at


def test_a_line_whose_session_dies_waits_and_resumes_after_login(deployment: Deployment) -> None:
    to = fresh_recipient()
    deployment.simulator.invalidate_sessions(DEMO_LINE)
    try:
        waiting = send_message(DEMO_LINE, to, "Waiting for login")
        soon = datetime.now(UTC) + timedelta(seconds=2)
        expiring = send_message(DEMO_LINE, fresh_recipient(), "Too late", expires_at=soon)
        wait_for(lambda: line_state(deployment) == "needs_login", 20, what="the line to need a login")
        assert deployment.wait_final(expiring)["state"] == "rejected"
        time.sleep(1)
        assert deployment.report(waiting)["state"] == "queued"  # waiting, not failed
    finally:
        login_line(deployment.runtime, DEMO_LINE, None, DEMO_PASSWORD)
    assert deployment.wait_final(waiting)["state"] == "delivered"
    assert [s["count"] for s in deployment.sends_to(to)] == [1]


def line_state(deployment: Deployment) -> str:
    [line] = [line for line in list_lines(deployment.runtime) if line.phone == "+1" + DEMO_LINE]
    return line.state


def test_bad_input_raises_naming_every_problem_and_records_nothing(deployment: Deployment) -> None:
    with pytest.raises(InvalidMessage) as caught:
        send_message("not a number", "12", "   ", [FileInput("x.exe", b"MZ\x90\x00")])
    text = str(caught.value)
    for field in ("line", "to", "attachments"):
        assert field in text
    with pytest.raises(InvalidMessage, match="unknown line"):
        send_message("+12065550199", fresh_recipient(), "from a line we never added")


def test_outbox_status_json_reads_every_state(deployment: Deployment) -> None:
    delivered = send_message(DEMO_LINE, fresh_recipient(), "Fine")
    failing = fresh_recipient()
    deployment.simulator.script(failing, outcomes=["code:-703"])
    failed = send_message(DEMO_LINE, failing, "Not fine")
    deployment.wait_final(delivered)
    deployment.wait_final(failed)
    reports = json.loads(deployment.cli("status", "--json", str(delivered), str(failed)))
    assert [(r["id"], r["state"]) for r in reports] == [(delivered, "delivered"), (failed, "failed")]
    assert reports[1]["parts"][0]["error"]["code"] == -703
    assert all(r["history"] for r in reports)


def test_logs_carry_message_ids_but_never_a_session_key_or_a_body(deployment: Deployment) -> None:
    body = "Secret-ish body text 7f3a"
    message_id = send_message(DEMO_LINE, fresh_recipient(), body)
    deployment.wait_final(message_id)
    [line] = [line for line in list_lines(deployment.runtime) if line.phone == "+1" + DEMO_LINE]
    assert line.session_key
    logs = deployment.stack.log("worker1") + deployment.stack.log("beat")
    assert line.session_key not in logs and line.session_key.split(":")[0] not in logs
    assert body not in logs
    assert f"message {message_id} part 1/1, normal: sent as" in logs


def test_the_application_hears_each_final_outcome_once(deployment: Deployment) -> None:
    delivered = send_message(DEMO_LINE, fresh_recipient(), "Tell the app")
    refused = fresh_recipient()
    deployment.simulator.script(refused, outcomes=["code:-703"])
    failed = send_message(DEMO_LINE, refused, "Tell the app too")
    deployment.wait_final(delivered)
    deployment.wait_final(failed)

    def both_heard() -> list[str] | None:
        calls = deployment.hook_calls()
        return calls if f"{failed} failed" in calls and f"{delivered} delivered" in calls else None

    calls = wait_for(both_heard, 10, what="the outcome hook")
    assert calls.count(f"{delivered} delivered") == 1 and calls.count(f"{failed} failed") == 1


def test_metrics_show_states_outcomes_latency_queues_and_waiting_age(deployment: Deployment) -> None:
    from starlette.testclient import TestClient

    from worker.web.app import create_app

    deployment.wait_final(send_message(DEMO_LINE, fresh_recipient(), "Now"))
    waiting = send_message(
        DEMO_LINE, fresh_recipient(), "Later", send_at=datetime.now(UTC) + timedelta(minutes=5)
    )
    with TestClient(create_app(deployment.runtime)) as web:
        text = web.get("/metrics").text
        health = web.get("/healthz")
    assert health.status_code == 200 and health.json() == {"database": True, "broker": True}
    assert 'outbox_messages{state="delivered"}' in text and 'outbox_messages{state="queued"}' in text
    assert 'outbox_send_outcomes_total{outcome="sent",priority="normal"}' in text
    assert "outbox_provider_latency_seconds_count" in text
    assert 'outbox_queue_depth{queue="send"}' in text
    assert 'outbox_oldest_queued_age_seconds{line="+15556661234"}' in text
    assert deployment.report(waiting)["state"] == "queued"


def test_the_statuses_of_many_texts_come_from_a_few_list_calls(deployment: Deployment) -> None:
    before = deployment.simulator.counters()["calls"]
    ids = [send_message(DEMO_LINE, fresh_recipient(), f"Batch poll {n}") for n in range(40)]
    reports = [deployment.wait_final(i, timeout_s=60) for i in ids]
    assert {r["state"] for r in reports} == {"delivered"}
    assert all(e["source"] == "poll" for r in reports for e in r["history"] if e["state"] == "delivered")
    after = deployment.simulator.counters()["calls"]
    calls = {m: after.get(m, 0) - before.get(m, 0) for m in ("message/send", "message/list", "message/get")}
    assert calls["message/send"] == 40
    assert calls["message/list"] + calls["message/get"] <= 20, calls  # not one poll per text
