"""The checks of what a request carries beside its text and files: when it may go (`send_at`,
`expires_at`), its idempotency key and its metadata.

Each bad value becomes a Problem naming its field, here, before anything is written: nothing the
database, JSON or the terminal would choke on (at once, or when it is read back later) gets past.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.planning import Problem

IDEMPOTENCY_KEY_MAX = 200
# A time further than this from now is a mistake (a unit slip, a zero timestamp), not a schedule.
SCHEDULE_HORIZON = timedelta(days=366)
METADATA_MAX_BYTES = 16_384  # as compact JSON: tags and ids, not documents (it is on every row)
METADATA_MAX_DEPTH = 16
_INT64 = range(-(2**63), 2**63)  # what a database integer holds
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_times(
    send_at: object, expires_at: object, now: datetime, problems: list[Problem]
) -> tuple[datetime | None, datetime | None]:
    """Both times as aware UTC datetimes (a naive one is taken to be UTC already)."""
    send = _moment("send_at", send_at, now, problems)
    expires = _moment("expires_at", expires_at, now, problems)
    if expires is not None and expires <= now:
        problems.append(Problem("expires_at", f"{expires.isoformat()} is already past"))
    elif expires is not None and send is not None and expires <= send:
        problems.append(Problem("expires_at", "must be later than send_at"))
    return send, expires


def _moment(name: str, value: object, now: datetime, problems: list[Problem]) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        problems.append(Problem(name, f"must be a datetime, not {type(value).__name__}"))
        return None
    try:
        # utcoffset(), not tzinfo: a tzinfo may have no offset, and astimezone would read local time.
        moment = value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)
    except (OverflowError, ValueError, TypeError):
        problems.append(Problem(name, f"{value.isoformat()} is out of range"))
        return None
    if abs(moment - now) > SCHEDULE_HORIZON:
        when = "from now" if moment > now else "ago"
        problems.append(
            Problem(name, f"{moment.isoformat()} is more than {SCHEDULE_HORIZON.days} days {when}")
        )
        return None
    return moment


def check_key(key: object, problems: list[Problem]) -> None:
    """An idempotency key: short text, without control characters (PostgreSQL refuses NUL) or lone
    surrogates (not encodable)."""
    if key is None:
        return
    if not isinstance(key, str) or not 0 < len(key) <= IDEMPOTENCY_KEY_MAX:
        problems.append(
            Problem("idempotency_key", f"must be a non-empty string of at most {IDEMPOTENCY_KEY_MAX}")
        )
    elif _CONTROL.search(key):
        problems.append(Problem("idempotency_key", "must not contain control characters"))
    elif not _encodable(key):
        problems.append(Problem("idempotency_key", "is not valid Unicode text (lone surrogate)"))


def check_metadata(metadata: object, problems: list[Problem]) -> dict[str, Any] | None:
    """A plain-JSON copy of the metadata (so a caller changing theirs later changes nothing), or
    None with the problem named: what is where, as `["order"][2]`."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        problems.append(Problem("metadata", f"must be a mapping, not {type(metadata).__name__}"))
        return None
    budget = [METADATA_MAX_BYTES]
    try:
        copy: dict[str, Any] = _plain(metadata, "", 0, budget)
        size = len(json.dumps(copy, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        if size > METADATA_MAX_BYTES:
            raise _NotPlain("", f"is {size:,} bytes as JSON, more than {METADATA_MAX_BYTES:,}")
    except _NotPlain as error:
        where = f"at {error.path}: " if error.path else ""
        problems.append(Problem("metadata", where + error.what))
        return None
    return copy


class _NotPlain(Exception):
    def __init__(self, path: str, what: str) -> None:
        super().__init__(what)
        self.path, self.what = path, what


def _plain(value: object, path: str, depth: int, budget: list[int]) -> Any:
    """A copy in JSON's own types. `budget` (bytes left) stops a huge value early: each item costs at
    least a byte as JSON, so the walk never grows with the input past the bound."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _NotPlain("", f"is more than {METADATA_MAX_BYTES:,} bytes as JSON")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value not in _INT64:
            raise _NotPlain(path, "an integer beyond 64 bits; send it as text")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotPlain(path, f"{value} is not a number JSON can hold")
        return float(value)
    if isinstance(value, str):
        return _text(value, path, budget)
    if depth >= METADATA_MAX_DEPTH:
        raise _NotPlain(path, f"nested more than {METADATA_MAX_DEPTH} deep")
    if isinstance(value, Mapping):
        return _plain_mapping(value, path, depth, budget)
    if isinstance(value, list | tuple):
        return [_plain(item, f"{path}[{n}]", depth + 1, budget) for n, item in enumerate(value)]
    raise _NotPlain(
        path,
        f"a value of type {type(value).__name__} is not JSON (text, number, true/false, null, list, mapping)",
    )


def _plain_mapping(value: Mapping[Any, Any], path: str, depth: int, budget: list[int]) -> dict[str, Any]:
    copy = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise _NotPlain(path, f"keys must be text, not {type(key).__name__} ({key!r:.40})")
        name = _text(key, f"{path}[{key!r:.40}]", budget)
        copy[name] = _plain(item, f"{path}[{key!r:.40}]", depth + 1, budget)
    return copy


def _text(value: str, path: str, budget: list[int]) -> str:
    budget[0] -= len(value)
    if budget[0] < 0:
        raise _NotPlain("", f"is more than {METADATA_MAX_BYTES:,} bytes as JSON")
    if "\x00" in value:
        raise _NotPlain(path, "text with a NUL character")
    if not _encodable(value):
        raise _NotPlain(path, "text that is not valid Unicode (lone surrogate)")
    return str.__str__(value)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
