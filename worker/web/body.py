"""Reading an untrusted request body: at most a cap of bytes, and JSON only of a sane shape.

Starlette reads a body whole when asked for it, and the standard json module accepts NaN, turns
1e400 into infinity and recurses as deep as the nesting goes; so both limits are kept here, by hand
(a few lines each, no library offers them for a Starlette request).
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request

MAX_JSON_DEPTH = 32  # a webhook's message object is flat (a list at most inside): far below this


class BodyTooLarge(Exception):
    """The body is over the cap (declared so, or found so while reading)."""


class BadJson(ValueError):
    """A body that is not JSON of a shape we accept."""


async def read_capped(request: Request, limit_bytes: int) -> bytes:
    """The body, read as it streams in and abandoned at `limit_bytes + 1` bytes; BodyTooLarge past
    the cap. A Content-Length over the cap is refused before a byte is read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit_bytes:
        raise BodyTooLarge(f"the body is over {limit_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit_bytes:
            raise BodyTooLarge(f"the body is over {limit_bytes} bytes")
    return bytes(body)


def loads_strict(body: bytes) -> Any:
    """The JSON value of a body; BadJson naming the problem for invalid JSON, NaN or Infinity,
    numbers out of a float's range, and nesting deeper than MAX_JSON_DEPTH."""
    try:
        value = json.loads(body, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise BadJson(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except BadJson:
        raise
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an integer of too many digits
        raise BadJson(f"not valid JSON: {error}") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise BadJson(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _no_constant(name: str) -> Any:
    raise BadJson(f"non-finite number {name} in JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJson(f"number {text[:40]} is out of range")
    return value


def _depth(value: Any) -> int:
    """How deep the lists and objects nest (iterative: the value may be deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest
