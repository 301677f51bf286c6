"""The transport side of the contract: parameters in (query, form, multipart, repeated keys) and
the JSON envelope out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response


@dataclass
class Params:
    """Every parameter of a call, query string and body merged; a repeated key is a list."""

    values: dict[str, list[str]] = field(default_factory=dict)
    files: list[tuple[str, UploadFile]] = field(default_factory=list)

    def add(self, key: str, value: str) -> None:
        self.values.setdefault(key, []).append(value)

    def get(self, key: str, *aliases: str) -> str | None:
        """The first value of a key (or of its first present alias)."""
        for name in (key, *aliases):
            if name in self.values:
                return self.values[name][0]
        return None

    def all(self, key: str) -> list[str]:
        """Every value of a repeated key (a comma-separated value counts as several)."""
        return [part for value in self.values.get(key, []) for part in value.split(",") if part.strip()]


async def read_params(request: Request) -> Params:
    """GET query, POST form, POST with the pairs in the query, and multipart: all accepted."""
    params = Params()
    for key, value in parse_qsl(request.url.query, keep_blank_values=True):
        params.add(key, value)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=20, max_fields=1000)
        for key, item in form.multi_items():
            if isinstance(item, UploadFile):
                params.files.append((key, item))
            else:
                params.add(key, item)
        return params
    body = await request.body()
    if body:
        for key, value in parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True):
            params.add(key, value)
    return params


def envelope(response: Any, status: int = 200, headers: dict[str, str] | None = None, **top: Any) -> Response:
    """`{"success": true, "response": ...}` with any top-level extras (total, size, ...)."""
    return json_response({"success": True, "response": response, **top}, status, headers)


def failure(response: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """`{"success": false, "response": ...}`: a text, or `{"desc": ..., "code": N}`."""
    return json_response({"success": False, "response": response}, status, headers)


def coded(code: int, desc: str) -> Response:
    """The coded failure shape, answered with HTTP 400 as the provider did."""
    return failure({"desc": desc, "code": code}, status=400)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON with big integers kept exact (Python's json never goes through a float)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def drop_connection(request: Request) -> Response:
    """Close the socket without answering: the client sees the connection dropped.

    uvicorn exposes no public way to do this; its request cycle (behind `receive`) holds the
    transport. Without it, fall back to an error so the fault is at least visible.
    """
    cycle = getattr(request.receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("cannot drop the connection under this server")
    transport.close()
    return Response(b"", status_code=200)
