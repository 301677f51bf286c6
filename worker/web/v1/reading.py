"""Reading a send request of the HTTP API (JSON, or a multipart form with file uploads) into the
producer's `TextRequest`, naming every problem with a field the way `send_message` does.

Only what the client sent goes in: a file is always bytes (never a path on this host), and every
value keeps its JSON type for the producer's own checks (the same as the Python API's).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.api.callback_url import Networks, url_problem
from worker.api.callbacks import EVENTS
from worker.planning import FileInput, Problem
from worker.producer.enqueue import TextRequest
from worker.store.new_messages import Origin

FIELDS = (
    "line",
    "to",
    "body",
    "attachments",
    "priority",
    "send_at",
    "expires_at",
    "metadata",
    "status_callback",
    "status_callback_events",
)
BATCH_FIELDS = (*FIELDS, "idempotency_key")
MAX_FILES = 20  # what the producer accepts (10 parts of 2)
MAX_BATCH = 10_000


@dataclass(frozen=True)
class Context:
    """What reading a request needs beside the request: who sends, the callback address policy."""

    key_id: int
    private_networks: Networks


def read_message(
    item: object,
    context: Context,
    idempotency_key: str | None,
    problems: list[Problem],
    allowed: Sequence[str] = FIELDS,
) -> TextRequest | None:
    """One message object as a request (None if it cannot even be read: its problems are named)."""
    if not isinstance(item, Mapping):
        problems.append(Problem("", f"must be a JSON object, not {_json_type(item)}"))
        return None
    unknown = sorted(str(k) for k in set(item) - set(allowed))
    if unknown:
        problems.append(
            Problem(unknown[0], "unknown field" + (f" (and {', '.join(unknown[1:])})" if unknown[1:] else ""))
        )
    for name in ("line", "to"):
        if name not in item:
            problems.append(Problem(name, "is required"))
    files = _files(item.get("attachments"), problems)
    send_at = _moment(item, "send_at", problems)
    expires_at = _moment(item, "expires_at", problems)
    origin = _origin(item, context, problems)
    own_key = item.get("idempotency_key")  # a batch's message may carry its own
    if "line" not in item or "to" not in item:
        return None
    return TextRequest(
        line=item["line"],
        to=item["to"],
        body=item.get("body"),
        attachments=files,
        idempotency_key=own_key if own_key is not None else idempotency_key,
        send_at=send_at,
        expires_at=expires_at,
        metadata=item.get("metadata"),
        priority=item.get("priority", "normal") if item.get("priority") is not None else "normal",
        origin=origin,
    )


def read_batch(
    body: object, context: Context, idempotency_key: str | None, problems: list[Problem]
) -> list[TextRequest | None]:
    """The messages of a batch, each read as one; problems named `messages[i].field`."""
    if not isinstance(body, Mapping) or set(body) != {"messages"} or not isinstance(body["messages"], list):
        problems.append(Problem("messages", 'the body must be {"messages": [message, ...]}'))
        return []
    items = body["messages"]
    if not items or len(items) > MAX_BATCH:
        problems.append(Problem("messages", f"must hold 1 to {MAX_BATCH:,} messages, not {len(items):,}"))
        return []
    requests = []
    for n, item in enumerate(items):
        own: list[Problem] = []
        key = f"{idempotency_key}:{n}" if idempotency_key is not None else None
        requests.append(read_message(item, context, key, own, BATCH_FIELDS))
        problems += [Problem(f"messages[{n}]" + (f".{p.field}" if p.field else ""), p.message) for p in own]
    return requests


def form_to_message(
    fields: Mapping[str, str], files: list[FileInput], problems: list[Problem]
) -> dict[str, Any]:
    """A multipart form as the JSON object it stands for: text fields as given (metadata as JSON
    text), the uploaded files as attachments."""
    item: dict[str, Any] = dict(fields)
    if "metadata" in item:
        try:
            item["metadata"] = json.loads(item["metadata"])
        except ValueError:
            problems.append(Problem("metadata", "must be a JSON object (as text in a form field)"))
            item.pop("metadata")
    if "attachments" in item:
        problems.append(Problem("attachments", "upload files as file parts named attachments"))
        item.pop("attachments")
    if files:
        item["attachments"] = files
    return item


def _files(value: object, problems: list[Problem]) -> list[FileInput]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(Problem("attachments", f"must be a list, not {_json_type(value)}"))
        return []
    if len(value) > MAX_FILES:
        problems.append(Problem("attachments", f"at most {MAX_FILES} files, not {len(value)}"))
        return []
    files = []
    for n, item in enumerate(value):
        if isinstance(item, FileInput):  # uploaded in a multipart form
            files.append(item)
            continue
        if not isinstance(item, Mapping) or set(item) != {"filename", "content_base64"}:
            problems.append(Problem(f"attachments[{n}]", 'must be {"filename": ..., "content_base64": ...}'))
            continue
        name, data = item["filename"], item["content_base64"]
        if not isinstance(name, str) or not name or not isinstance(data, str):
            problems.append(Problem(f"attachments[{n}]", "filename and content_base64 must be strings"))
            continue
        try:
            files.append(FileInput(name=name, data=base64.b64decode(data, validate=True)))
        except (binascii.Error, ValueError):
            problems.append(Problem(f"attachments[{n}].content_base64", "is not valid base64"))
    return files


def _moment(item: Mapping[str, Any], name: str, problems: list[Problem]) -> datetime | None:
    value = item.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(Problem(name, f"must be an RFC 3339 date-time string, not {_json_type(value)}"))
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        problems.append(Problem(name, f"{value[:40]!r} is not an RFC 3339 date-time"))
        return None


def _origin(item: Mapping[str, Any], context: Context, problems: list[Problem]) -> Origin:
    url, events = item.get("status_callback"), item.get("status_callback_events")
    if url is None:
        if events is not None:
            problems.append(Problem("status_callback_events", "needs a status_callback"))
        return Origin(context.key_id)
    problem = url_problem(url, context.private_networks)
    if problem:
        problems.append(Problem("status_callback", problem))
        return Origin(context.key_id)
    if events is None:
        events = "final"
    if events not in EVENTS:
        problems.append(Problem("status_callback_events", f"must be one of {', '.join(EVENTS)}"))
        return Origin(context.key_id)
    return Origin(context.key_id, str(url), str(events))


def _json_type(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
