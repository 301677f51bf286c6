"""Provider dates in any offset: the simulator writes US Pacific time as the live service did, older
captures and other stand-ins write `Z` or `+00:00`; the client reads each as the same instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.zipwhip import parse

WINTER = datetime(2026, 1, 2, 11, 4, 5, 250_000, tzinfo=UTC)
SUMMER = datetime(2026, 7, 2, 22, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("written", "instant"),
    [
        ("2026-01-02T11:04:05.250Z", WINTER),
        ("2026-01-02T11:04:05.250+00:00", WINTER),
        ("2026-01-02T03:04:05.250-08:00", WINTER),
        ("2026-07-02T15:04:05-07:00", SUMMER),  # the live service in summer, whole seconds
        ("2026-07-03T00:04:05+02:00", SUMMER),
        ("2026-07-02T22:04:05", SUMMER),  # no offset: read as UTC
    ],
)
def test_every_offset_reads_as_the_same_utc_instant(written: str, instant: datetime) -> None:
    message = parse.message({"id": "1", "dateCreated": written, "lastUpdated": written})
    conversation = parse.conversation({"fingerprint": "9", "lastMessageDate": written})
    hooked = parse.message({"id": 1, "dateCreated": written, "dateDelivered": written})  # webhook names
    for when in (
        message.date_created,
        message.last_updated,
        conversation.last_message_date,
        hooked.last_updated,
    ):
        assert when == instant
        assert when is not None and when.utcoffset() == timedelta(0)


def test_pacific_and_utc_dates_compare_in_order() -> None:
    """Reconciliation and polling compare listed dates with the moment a send began."""
    began = datetime(2026, 1, 2, 11, 4, 5, tzinfo=UTC)
    later = parse.message({"id": "1", "dateCreated": "2026-01-02T03:04:06.000-08:00"}).date_created
    earlier = parse.message({"id": "2", "dateCreated": "2026-01-02T11:04:04Z"}).date_created
    assert earlier is not None and later is not None
    assert earlier < began < later


def test_a_date_that_is_not_one_is_left_empty() -> None:
    assert parse.message({"id": "1", "dateCreated": "yesterday"}).date_created is None
