"""message/send and messaging/send: the provider's checks, then the outcome the faults choose."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

from starlette.datastructures import UploadFile
from starlette.responses import HTMLResponse, Response

from simulator.context import Call
from simulator.numbers import e164
from simulator.state import Message, StoredFile
from simulator.wire import coded, drop_connection, envelope, failure, json_response

SEND_CODE_TEXT = {
    -855: "Internal Error",
    -1: "Unknown Error",
    -801: "Spam Protection",
    -704: "Internal Error",
    -703: "Internal Error - Bad argument (incorrect/invalid input)",
    -700: "Internal Error",
    -394: "Invalid Parameter Length",
    -124: "Unable to Determine Carrier",
}
_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
ALLOWED_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "text/plain"})
_HTML_ERROR = (
    "<html><head><title>Error</title></head>"
    "<body><h1>HTTP Status 500 - Internal Server Error</h1></body></html>"
)


def _opted_out_text(number: str) -> Response:
    return coded(-1234, f"You cannot send to line opted out numbers: {number} !")


async def message_send(call: Call) -> Response:
    """SMS to one or more contacts."""
    contacts = call.params.all("contacts")
    body = call.params.get("body")
    if not contacts:
        return failure("Required String parameter 'contacts' is not present")
    if body is None:
        return failure("Required String parameter 'body' is not present")
    numbers = [e164(c) for c in contacts]
    if None in numbers:
        return coded(-703, f"{SEND_CODE_TEXT[-703]}: contacts")
    problem = _check_body(call, body, require_text=True)
    if problem:
        return problem
    recipients = [n for n in numbers if n]
    for number in recipients:
        if (call.login.line, number) in call.world.opted_out:
            return _opted_out_text(number)
    from_name = call.params.get("fromName") or None
    return await _outcome(
        call,
        recipients[0],
        lambda: [_record(call, n, body, [], from_name) for n in recipients],
        _sms_answer,
    )


def _check_body(call: Call, body: str, require_text: bool) -> Response | None:
    size = len(body.encode("utf-8"))
    if size > call.world.config.body_max_bytes:
        return coded(
            -394, f"{SEND_CODE_TEXT[-394]}: body is {size} bytes, at most {call.world.config.body_max_bytes}"
        )
    if require_text and not body.strip():
        return coded(-703, f"{SEND_CODE_TEXT[-703]}: body is empty")
    return None


def _record(
    call: Call, number: str, body: str, files: list[StoredFile], from_name: str | None = None
) -> Message:
    message = call.world.record(call.login.line, number, body, "ZO", files, from_name)
    call.webhooks.message_sent(message)
    return message


def _sms_answer(messages: list[Message], numeric: bool = False) -> dict[str, Any]:
    ids = [m.id if numeric else str(m.id) for m in messages]
    single = len(messages) == 1
    root: int | str = ids[0] if single else (messages[-1].id + 1 if numeric else str(messages[-1].id + 1))
    return {
        "fingerprint": messages[0].fingerprint if single else None,
        "root": root,
        "tokens": [
            {"contact": m.contact_id, "device": m.device_id, "fingerprint": m.fingerprint, "message": i}
            for m, i in zip(messages, ids, strict=True)
        ],
    }


async def messaging_send(call: Call) -> Response:
    """MMS to exactly one recipient, files as multipart parts of any name."""
    to = call.params.all("to")
    if not to:
        return failure("Required String parameter 'to' is not present")
    number = e164(to[0]) if len(to) == 1 else None
    if number is None:
        return coded(-703, f"{SEND_CODE_TEXT[-703]}: to must be exactly one number")
    body = call.params.get("body") or ""
    files = [(upload, await upload.read()) for _, upload in call.params.files if upload.filename is not None]
    problem = _check_body(call, body, require_text=False) or _check_files(call, body, files)
    if problem:
        return problem
    if (call.login.line, number) in call.world.opted_out:
        return _opted_out_text(number)
    stored = [_stored(upload, data) for upload, data in files]
    return await _outcome(call, number, lambda: [_record(call, number, body, stored)], _mms_answer)


def _mms_answer(messages: list[Message], numeric: bool = True) -> dict[str, Any]:
    return {"id": messages[0].id if numeric else str(messages[0].id), "status": "queued"}


def _sniff(data: bytes) -> str | None:
    for magic, content_type in _MAGIC:
        if data.startswith(magic):
            return content_type
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/plain"


def _check_files(call: Call, body: str, files: list[tuple[UploadFile, bytes]]) -> Response | None:
    config = call.world.config
    if not files and not body.strip():
        return coded(-703, f"{SEND_CODE_TEXT[-703]}: nothing to send")
    if len(files) > config.max_attachments:
        return coded(-703, f"Too many attachments: {len(files)}, at most {config.max_attachments}")
    for upload, data in files:
        declared = (upload.content_type or "").split(";")[0].strip().lower()
        actual = _sniff(data)
        if declared not in ALLOWED_TYPES or actual != declared:
            return coded(-703, f"Unsupported attachment {upload.filename!r} ({declared or 'no type'})")
    payload = len(body.encode("utf-8")) + sum(len(data) for _, data in files)
    if payload > config.payload_max_bytes:
        return coded(-394, f"Payload too large: {payload} bytes, at most {config.payload_max_bytes}")
    return None


def _stored(upload: UploadFile, data: bytes) -> StoredFile:
    return StoredFile(
        upload.filename or "", upload.content_type or "", len(data), hashlib.sha256(data).hexdigest()
    )


async def _outcome(
    call: Call,
    recipient: str,
    record: Callable[[], list[Message]],
    answer: Callable[..., dict[str, Any]],
) -> Response:
    """Answer as the fault plan says; `record` keeps the message, `answer` shapes the success."""
    world = call.world
    wait = world.over_rate(call.login.line)
    if wait is not None:
        return failure("Too Many Requests", status=429, headers={"Retry-After": str(max(1, round(wait)))})
    outcome = world.outcome(recipient)
    if outcome.startswith("code:"):
        code = int(outcome.split(":", 1)[1])
        return _opted_out_text(recipient) if code == -1234 else coded(code, SEND_CODE_TEXT.get(code, "Error"))
    if outcome == "http:500":
        return HTMLResponse(_HTML_ERROR, status_code=500)
    if outcome == "http:429":
        return failure("Too Many Requests", status=429, headers={"Retry-After": "1"})
    if outcome == "drop_before_record":
        return drop_connection(call.request)
    messages = record()
    return await _answer_recorded(call, outcome, messages, answer)


async def _answer_recorded(
    call: Call, outcome: str, messages: list[Message], answer: Callable[..., dict[str, Any]]
) -> Response:
    if outcome == "slow":
        await asyncio.sleep(call.world.faults.slow_answer_s)
    if outcome == "drop_after_record":
        return drop_connection(call.request)
    if outcome == "html_200":
        return HTMLResponse(_HTML_ERROR, status_code=200)
    if outcome == "empty_200":
        return Response(b"", status_code=200, media_type="application/json")
    if outcome == "truncated_200":
        whole = envelope(answer(messages)).body
        return Response(whole[: len(whole) // 2], status_code=200, media_type="application/json")
    if outcome == "missing_tokens":
        shaped = answer(messages)
        shaped.pop("tokens", None)
        shaped.pop("id", None)
        return envelope(shaped)
    if outcome == "numeric_ids":
        return json_response({"success": True, "response": answer(messages, numeric=True)})
    return envelope(answer(messages))
