"""The HTTP API in process: keys, scopes, validation named by field, idempotency, limits; a refused
request changes nothing."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.api.conftest import LINE, OTHER, Api, make_api
from worker.api.keys import revoke_key
from worker.web.v1.openapi import dump

ROOT = Path(__file__).resolve().parents[2]


def png_bytes() -> bytes:
    """A small real PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "teal").save(buffer, "PNG")
    return buffer.getvalue()


SMS = {"line": LINE, "to": "2065551234", "body": "Your order shipped"}


def test_the_served_openapi_document_is_the_checked_in_one(api: Api) -> None:
    served = api.client.get("/v1/openapi.json").json()
    assert served == json.loads((ROOT / "docs/api/openapi.json").read_text())
    assert (ROOT / "docs/api/openapi.json").read_text() == dump()


def test_a_message_is_answered_as_get_shows_it(api: Api) -> None:
    sent = api.client.post("/v1/messages", json=SMS, headers=api.auth())
    assert sent.status_code == 201
    shown = api.client.get(f"/v1/messages/{sent.json()['id']}", headers=api.auth())
    assert shown.json() == sent.json()
    assert (
        sent.json()["state"] == "queued" and sent.headers["location"] == f"/v1/messages/{sent.json()['id']}"
    )


def test_long_text_becomes_an_mms_with_a_txt_and_files_come_as_base64_or_uploads(api: Api) -> None:
    long = api.client.post("/v1/messages", json={**SMS, "body": "word " * 300}, headers=api.auth()).json()
    assert [p["kind"] for p in long["parts"]] == ["mms"] and long["parts"][0]["files"][0]["from_body"]
    picture = {"filename": "p.png", "content_base64": base64.b64encode(png_bytes()).decode()}
    mms = api.client.post("/v1/messages", json={**SMS, "attachments": [picture]}, headers=api.auth())
    assert mms.status_code == 201 and mms.json()["parts"][0]["files"][0]["type"] == "image/png"
    form = {"line": LINE, "to": "2065551234", "metadata": '{"ticket": 7}'}
    upload = api.client.post(
        "/v1/messages",
        data=form,
        files=[("attachments", ("p.png", png_bytes(), "image/png"))],
        headers=api.auth(),
    )
    assert upload.status_code == 201 and upload.json()["metadata"] == {"ticket": 7}


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer obx_not-a-key", "Basic dXNlcjpwdw==", "Bearer " + "obx_" + "x" * 500],
)
def test_no_key_or_a_bad_key_is_401_and_changes_nothing(api: Api, header: str | None) -> None:
    before = api.rows()
    headers = {"Authorization": header} if header else {}
    answer = api.client.post("/v1/messages", json=SMS, headers=headers)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert api.client.get("/v1/messages", headers=headers).status_code == 401
    assert api.rows() == before


def test_a_revoked_key_is_refused_at_once(api: Api) -> None:
    assert api.client.get("/v1/messages", headers=api.auth()).status_code == 200
    assert revoke_key(api.runtime.engine, api.key.id)
    assert api.client.get("/v1/messages", headers=api.auth()).status_code == 401


def test_a_key_scoped_to_a_line_cannot_send_from_or_read_another(api: Api) -> None:
    mine = api.client.post("/v1/messages", json=SMS, headers=api.auth(api.scoped))
    assert mine.status_code == 201
    before = api.rows()
    other = api.client.post("/v1/messages", json={**SMS, "line": OTHER}, headers=api.auth(api.scoped))
    assert other.status_code == 403 and other.json()["error"]["problems"][0]["field"] == "line"
    batch = {"messages": [SMS, {**SMS, "line": OTHER}]}
    refused = api.client.post("/v1/messages:batch", json=batch, headers=api.auth(api.scoped))
    assert refused.status_code == 403
    assert [p["field"] for p in refused.json()["error"]["problems"]] == ["messages[1].line"]
    assert api.rows() == before
    theirs = api.client.post("/v1/messages", json={**SMS, "line": OTHER}, headers=api.auth()).json()["id"]
    assert api.client.get(f"/v1/messages/{theirs}", headers=api.auth(api.scoped)).status_code == 404
    listed = api.client.get("/v1/messages", headers=api.auth(api.scoped)).json()["messages"]
    assert {m["line"] for m in listed} == {"+1" + LINE}
    assert api.client.get(f"/v1/messages?line={OTHER}", headers=api.auth(api.scoped)).status_code == 403


def test_bad_input_is_422_naming_each_field_and_records_nothing(api: Api) -> None:
    before = api.rows()
    bad = {
        "line": LINE,
        "to": "12",
        "body": "hi",
        "priority": "urgent",
        "send_at": "tomorrow",
        "metadata": [1],
        "status_callback": "ftp://example.com/x",
        "colour": "red",
        "attachments": [{"filename": "a.png", "content_base64": "***"}],
    }
    answer = api.client.post("/v1/messages", json=bad, headers=api.auth())
    assert answer.status_code == 422
    fields = {p["field"] for p in answer.json()["error"]["problems"]}
    assert fields >= {
        "to",
        "priority",
        "send_at",
        "metadata",
        "status_callback",
        "colour",
        "attachments[0].content_base64",
    }
    assert api.rows() == before


def test_a_bad_batch_names_problems_by_index_and_records_none(api: Api) -> None:
    before = api.rows()
    batch = {"messages": [SMS, {**SMS, "to": "nope"}, SMS, {"line": LINE}]}
    answer = api.client.post("/v1/messages:batch", json=batch, headers=api.auth())
    assert answer.status_code == 422
    assert {p["field"] for p in answer.json()["error"]["problems"]} == {"messages[1].to", "messages[3].to"}
    assert api.rows() == before
    good = api.client.post("/v1/messages:batch", json={"messages": [SMS] * 3}, headers=api.auth())
    assert good.status_code == 201 and [m["state"] for m in good.json()["messages"]] == ["queued"] * 3


def test_an_idempotency_key_replays_the_same_message_and_refuses_another(api: Api) -> None:
    headers = {**api.auth(), "Idempotency-Key": "order-981"}
    first = api.client.post("/v1/messages", json=SMS, headers=headers)
    again = api.client.post("/v1/messages", json=SMS, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    before = api.rows()
    other = api.client.post("/v1/messages", json={**SMS, "body": "Something else"}, headers=headers)
    assert other.status_code == 409
    assert other.json()["error"]["problems"][0]["field"] == "idempotency_key"
    moved = api.client.post(
        "/v1/messages", json={**SMS, "status_callback": "https://example.com/hook"}, headers=headers
    )
    assert moved.status_code == 409  # the callback is part of what was asked
    batch = {"messages": [SMS, {**SMS, "to": "2065550000"}]}
    once = api.client.post(
        "/v1/messages:batch", json=batch, headers={**headers, "Idempotency-Key": "blast-1"}
    )
    twice = api.client.post(
        "/v1/messages:batch", json=batch, headers={**headers, "Idempotency-Key": "blast-1"}
    )
    assert (once.status_code, twice.status_code) == (201, 200) and once.json() == twice.json()
    assert api.rows()["Message"] == before["Message"] + 2


def test_bodies_over_the_cap_not_json_or_of_another_type_are_refused(
    sqlite_url: str, broker_url: str
) -> None:
    for api in make_api(sqlite_url, broker_url, OUTBOX_API_MAX_REQUEST_BYTES="2048"):
        before = api.rows()
        big = {**SMS, "attachments": [{"filename": "a.txt", "content_base64": "QUFB" * 1000}]}
        assert api.client.post("/v1/messages", json=big, headers=api.auth()).status_code == 413
        raw = {**api.auth(), "Content-Type": "application/json"}
        assert api.client.post("/v1/messages", content=b"{nope", headers=raw).status_code == 400
        assert api.client.post("/v1/messages", content=b'{"a": NaN}', headers=raw).status_code == 400
        text = {**api.auth(), "Content-Type": "text/plain"}
        assert api.client.post("/v1/messages", content=b"hello", headers=text).status_code == 415
        assert api.rows() == before


def test_a_key_over_its_rate_gets_429_with_retry_after(sqlite_url: str, broker_url: str) -> None:
    for api in make_api(sqlite_url, broker_url, OUTBOX_API_REQUESTS_PER_S="3"):
        codes = [api.client.get("/v1/messages", headers=api.auth()).status_code for _ in range(8)]
        assert 429 in codes and codes[:3] == [200, 200, 200]
        refused = next(
            r
            for r in (api.client.get("/v1/messages", headers=api.auth()) for _ in range(5))
            if r.status_code == 429
        )
        assert 1 <= int(refused.headers["retry-after"]) <= 1
        assert api.client.get("/v1/messages", headers=api.auth(api.scoped)).status_code == 200  # per key


def test_listing_pages_with_a_cursor_and_filters(api: Api) -> None:
    ids = [
        m["id"]
        for m in api.client.post(
            "/v1/messages:batch", json={"messages": [SMS] * 5}, headers=api.auth()
        ).json()["messages"]
    ]
    seen, cursor = [], ""
    while True:
        page = api.client.get(f"/v1/messages?limit=2{cursor}", headers=api.auth()).json()
        seen += [m["id"] for m in page["messages"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == ids
    assert api.client.get("/v1/messages?state=delivered", headers=api.auth()).json()["messages"] == []
    assert api.client.get("/v1/messages?state=nope&limit=0", headers=api.auth()).status_code == 422
    later = api.client.get("/v1/messages?since=2999-01-01T00:00:00Z", headers=api.auth()).json()
    assert later["messages"] == []


def test_no_key_appears_in_the_log(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG"):
        api.client.post("/v1/messages", json=SMS, headers=api.auth())
        api.client.post("/v1/messages", json=SMS, headers={"Authorization": "Bearer obx_wrong"})
    assert api.key.key not in caplog.text and "obx_wrong" not in caplog.text
