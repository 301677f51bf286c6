"""A client written from the OpenAPI document alone (plain HTTP, as curl would send it) against the
real processes: it sends an SMS, a long text and an MMS, reads them until delivered, and receives
signed status callbacks; bad keys, bad input, oversize bodies and replays get 4xx and change nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import func
from sqlmodel import Session, select

from tests.e2e.conftest import DEMO_LINE, Deployment, deploy, fresh_recipient, image
from tests.support.receiver import Receiver, receiving
from tests.support.simulator import SimulatorHandle
from tests.support.stack import wait_for
from worker.api.signing import verify
from worker.store.models import Attachment, CallbackDelivery, Message, Part, StatusEvent

pytestmark = pytest.mark.e2e
MAX_BODY = 400_000


@pytest.fixture(scope="module")
def served(
    broker_url: str, simulator: SimulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Deployment, dict[str, str], Receiver]]:
    workdir = tmp_path_factory.mktemp("http-api")
    env = {
        "OUTBOX_CALLBACK_PRIVATE_NETWORKS": '["127.0.0.0/8"]',  # the test receiver is on loopback
        "OUTBOX_API_MAX_REQUEST_BYTES": str(MAX_BODY),
    }
    with (
        receiving() as receiver,
        deploy("postgres", broker_url, simulator, workdir, env, web=True) as running,
    ):
        made = json.loads(running.cli("apikey", "create", "--line", DEMO_LINE, "--json"))
        yield running, made, receiver


def _rows(deployment: Deployment) -> dict[str, int]:
    with Session(deployment.runtime.engine) as session:
        return {
            t.__name__: int(session.exec(select(func.count()).select_from(t)).one())
            for t in (Message, Part, Attachment, StatusEvent, CallbackDelivery)
        }


def test_a_client_sends_reads_and_hears_back(served: tuple[Deployment, dict[str, str], Receiver]) -> None:
    deployment, made, receiver = served
    base, auth = deployment.web_url, {"Authorization": f"Bearer {made['key']}"}
    callback = {"status_callback": receiver.url, "status_callback_events": "all"}
    picture = image("png")
    texts = {
        "sms": {"body": "Your order shipped"},
        "long": {"body": "A long letter. " * 80},
        "mms": {
            "body": "The photo",
            "attachments": [
                {"filename": picture.name, "content_base64": base64.b64encode(picture.data).decode()}
            ],
        },
    }
    ids = {}
    for kind, fields in texts.items():
        message = {"line": DEMO_LINE, "to": fresh_recipient(), **fields, **callback}
        answer = requests.post(f"{base}/v1/messages", json=message, headers=auth, timeout=10)
        assert answer.status_code == 201, answer.text
        assert answer.json()["state"] == "queued"
        ids[kind] = answer.json()["id"]

    def delivered(message_id: int) -> dict[str, object] | None:
        shown = requests.get(f"{base}/v1/messages/{message_id}", headers=auth, timeout=10).json()
        return shown if shown["state"] == "delivered" else None

    shown = {
        kind: wait_for(lambda i=i: delivered(i), 60, 0.3, f"{kind} delivered") for kind, i in ids.items()
    }
    assert [p["kind"] for p in shown["sms"]["parts"]] == ["sms"]  # type: ignore[index]
    assert [p["kind"] for p in shown["long"]["parts"]] == ["mms"]  # type: ignore[index]
    assert shown["long"]["parts"][0]["files"][0]["name"].endswith(".txt")  # type: ignore[index]
    assert shown["mms"]["parts"][0]["files"][0]["type"] == "image/png"  # type: ignore[index]

    def told_final() -> bool:
        return {e["message_id"] for e in receiver.events() if e["final"]} >= set(ids.values())

    wait_for(told_final, 60, 0.3, "the final callbacks")
    for headers, body in receiver.calls:
        assert verify(made["signing_secret"], headers["outbox-signature"], body)
    for message_id in ids.values():
        states = [e["state"] for e in receiver.events() if e["message_id"] == message_id]
        assert states[-1] == "delivered" and "sent" in states
        assert states == sorted(set(states), key=states.index)  # in order, none told twice


def test_bad_keys_bad_input_oversize_and_replays_are_4xx_and_change_nothing(
    served: tuple[Deployment, dict[str, str], Receiver],
) -> None:
    deployment, made, _ = served
    base, auth = deployment.web_url, {"Authorization": f"Bearer {made['key']}"}
    message = {"line": DEMO_LINE, "to": fresh_recipient(), "body": "Once"}
    first = requests.post(
        f"{base}/v1/messages", json=message, headers={**auth, "Idempotency-Key": "e2e-1"}, timeout=10
    )
    assert first.status_code == 201
    deployment.wait_final(first.json()["id"])  # so that its own progress changes no count below
    before = _rows(deployment)
    post = f"{base}/v1/messages"
    answers = {
        "no key": requests.post(post, json=message, timeout=10),
        "bad key": requests.post(post, json=message, headers={"Authorization": "Bearer obx_x"}, timeout=10),
        "bad input": requests.post(
            post, json={**message, "to": "12", "priority": "asap"}, headers=auth, timeout=10
        ),
        "other line": requests.post(post, json={**message, "line": "5556660000"}, headers=auth, timeout=10),
        "oversize": requests.post(
            post,
            json={**message, "attachments": [{"filename": "a.png", "content_base64": "A" * MAX_BODY}]},
            headers=auth,
            timeout=10,
        ),
        "replay": requests.post(
            post, json={**message, "body": "Twice?"}, headers={**auth, "Idempotency-Key": "e2e-1"}, timeout=10
        ),
    }
    assert {k: a.status_code for k, a in answers.items()} == {
        "no key": 401,
        "bad key": 401,
        "bad input": 422,
        "other line": 403,
        "oversize": 413,
        "replay": 409,
    }
    assert {p["field"] for p in answers["bad input"].json()["error"]["problems"]} == {"to", "priority"}
    same = requests.post(post, json=message, headers={**auth, "Idempotency-Key": "e2e-1"}, timeout=10)
    assert same.status_code == 200 and same.json()["id"] == first.json()["id"]
    assert _rows(deployment) == before
    assert made["key"] not in deployment.stack.log("web") + deployment.stack.log("worker1")
