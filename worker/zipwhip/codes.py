"""The provider's status codes, loaded from the CSV tables in `data/` (carried over from the seed
documents, complete). Unknown codes are answered gracefully: state "unknown", never retryable,
the raw value kept."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType


@dataclass(frozen=True)
class SendCode:
    """A code answered synchronously by message/send or messaging/send."""

    code: int
    description: str
    state: str  # failure | unknown
    retryable: bool


@dataclass(frozen=True)
class DeliveryStatus:
    """A `statusCode` on the message object: where delivery stands."""

    status_code: int
    description: str
    state: str  # success | failure | transient | unknown
    final: bool


@dataclass(frozen=True)
class MessageStatusInfo:
    """A `messageStatus`: the detail (for failures, the reason) behind a statusCode."""

    message_status: int
    status_code: int
    description: str


@dataclass(frozen=True)
class ProgressCode:
    """A code as seen in `message/progress` webhook events (the seed's progress view)."""

    code: int
    description: str
    state: str
    final: bool


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("worker.zipwhip").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _yes(value: str) -> bool:
    return value.strip().lower() in {"yes", "true"}


SEND_CODES: Mapping[int, SendCode] = MappingProxyType(
    {
        int(r["code"]): SendCode(int(r["code"]), r["description"], r["state"], _yes(r["retryable"]))
        for r in _rows("send_codes.csv")
    }
)
DELIVERY_STATUSES: Mapping[int, DeliveryStatus] = MappingProxyType(
    {
        int(r["status_code"]): DeliveryStatus(
            int(r["status_code"]), r["description"], r["state"], _yes(r["final"])
        )
        for r in _rows("delivery_status.csv")
    }
)
MESSAGE_STATUSES: Mapping[int, MessageStatusInfo] = MappingProxyType(
    {
        int(r["message_status"]): MessageStatusInfo(
            int(r["message_status"]), int(r["status_code"]), r["description"]
        )
        for r in _rows("message_status.csv")
    }
)
PROGRESS_CODES: Mapping[int, ProgressCode] = MappingProxyType(
    {
        int(r["code"]): ProgressCode(int(r["code"]), r["description"], r["state"], _yes(r["final"]))
        for r in _rows("progress_codes.csv")
    }
)


def send_code(code: int) -> SendCode:
    """The meaning of a send code; an unknown one is not retryable and keeps its raw value."""
    return SEND_CODES.get(code) or SendCode(code, f"Unknown send code {code}", "unknown", False)


def delivery_status(status_code: int) -> DeliveryStatus:
    """The meaning of a statusCode; an unknown one is neither final nor known."""
    return DELIVERY_STATUSES.get(status_code) or DeliveryStatus(
        status_code, f"Unknown statusCode {status_code}", "unknown", False
    )


def message_status(message_status: int) -> MessageStatusInfo:
    """The description of a messageStatus; an unknown one names its raw value."""
    return MESSAGE_STATUSES.get(message_status) or MessageStatusInfo(
        message_status, -1, f"Unknown messageStatus {message_status}"
    )
