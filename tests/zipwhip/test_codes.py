"""The code tables hold every code of the seed documents, with the same meaning."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from worker.zipwhip.codes import (
    DELIVERY_STATUSES,
    MESSAGE_STATUSES,
    PROGRESS_CODES,
    SEND_CODES,
    delivery_status,
    message_status,
    send_code,
)

SEEDS = Path(__file__).resolve().parents[2] / "docs" / "provider"
API = (SEEDS / "zipwhip-software-api.txt").read_text(encoding="utf-8").splitlines()
STATUS = (SEEDS / "zipwhip-status-codes.txt").read_text(encoding="utf-8")


def _rows(pattern: str) -> list[re.Match[str]]:
    return [m for line in API if (m := re.match(pattern, line))]


def test_every_send_code_of_the_seed_is_in_the_table() -> None:
    rows = _rows(r"^(-\d+) (.+) (Failure|Unknown) (Yes|No)$")
    assert len(rows) == 8
    for row in rows:
        code = SEND_CODES[int(row[1])]
        assert (code.description, code.state, code.retryable) == (row[2], row[3].lower(), row[4] == "Yes")


def test_the_send_codes_are_exactly_the_nine_of_both_seeds() -> None:
    assert sorted(SEND_CODES) == [-1234, -855, -801, -704, -703, -700, -394, -124, -1]
    assert [c for c, v in SEND_CODES.items() if v.retryable] == [-855, -1]


def test_every_delivery_status_of_the_seeds_is_in_the_table() -> None:
    rows = _rows(r"^(\d) (.+) (Success|Failure|Transient) (True|False)$")
    assert len(rows) == 7
    for row in rows:
        status = DELIVERY_STATUSES[int(row[1])]
        assert (status.description, status.state, status.final) == (row[2], row[3].lower(), row[4] == "True")
    assert DELIVERY_STATUSES[3].state == "transient"  # only in the progress view
    assert sorted(DELIVERY_STATUSES) == list(range(8))


def test_every_message_status_of_the_seed_is_in_the_table() -> None:
    rows = _rows(r"^(\d) (\d{3,4}) (.+)$")
    assert len(rows) == 71
    for row in rows:
        info = MESSAGE_STATUSES[int(row[2])]
        assert (info.status_code, info.description) == (int(row[1]), row[3])
    assert len(MESSAGE_STATUSES) == len(rows)


def test_every_progress_code_of_the_status_seed_is_in_the_table() -> None:
    progress = STATUS.split("Message Sending/Progress")[-1]
    rows = re.findall(r"^\|\s*(-?\d+)\s*\|\s*(.+?)\s*\|\s*(\w+)\s*\|\s*(\w+)\s*\|$", progress, flags=re.M)
    assert len(rows) == 11
    for code, description, _state, final in rows:
        assert PROGRESS_CODES[int(code)].description == description
        assert PROGRESS_CODES[int(code)].final == (final == "Yes")


@pytest.mark.parametrize("code", [-9999, -2, 17])
def test_unknown_send_codes_are_not_retryable_and_keep_their_value(code: int) -> None:
    unknown = send_code(code)
    assert (unknown.code, unknown.state, unknown.retryable) == (code, "unknown", False)


def test_unknown_statuses_are_answered_gracefully() -> None:
    assert delivery_status(42).state == "unknown" and not delivery_status(42).final
    assert "4242" in message_status(4242).description
