"""Polling pages through a newest-first message/list that keeps growing while it pages: the pages
follow the drift, so every due text is found on a page (none left to message/get) in about as many
pages as the span needs, and a line that slows down leaves overlaps, never gaps. A fake provider
stands at the boundary; the real one is exercised by the e2e tests and `outbox bench`."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from worker.pipeline.track import Due, _get_each, _listed
from worker.zipwhip.errors import Classification, ErrorKind, ProviderError
from worker.zipwhip.results import MessagePage, ProviderMessage

START = datetime(2026, 11, 24, tzinfo=UTC)


@dataclass
class GrowingLine:
    """A line's messages, oldest first; `arrivals` more land before each list call."""

    arrivals: list[int]
    ids: list[int] = field(default_factory=list)
    calls: int = 0

    def add(self, count: int) -> None:
        self.ids += range(len(self.ids), len(self.ids) + count)

    def list_messages(self, session: str, start: int = 0, limit: int = 20) -> MessagePage:
        self.add(self.arrivals[min(self.calls, len(self.arrivals) - 1)])
        self.calls += 1
        newest_first = self.ids[::-1][start : start + limit]
        messages = tuple(
            ProviderMessage(id=str(i), date_created=START + timedelta(milliseconds=i)) for i in newest_first
        )
        return MessagePage(total=len(self.ids), size=len(messages), messages=messages)


def _poll(line: GrowingLine, due_ids: range, skip: int, page_size: int = 100) -> tuple[set[str], int]:
    runtime: Any = SimpleNamespace(client=line, settings=SimpleNamespace(poll_page_size=page_size))
    due = Due(
        session_key="k",
        parts=[(i, i, str(i)) for i in due_ids],
        since=START,
        skip=skip,
        span=len(due_ids),
    )
    listed, pages, failed = _listed(runtime, due)
    assert failed is None
    return {str(i) for i in due_ids} - listed.keys(), pages


@pytest.mark.parametrize("per_page", [0, 10, 55, 90])
def test_every_due_text_is_found_while_the_line_keeps_sending(per_page: int) -> None:
    line = GrowingLine(arrivals=[0, *([per_page] * 100)])
    line.add(5000)
    due = range(1000, 3000)  # 2,000 due, 2,000 newer above them when the poll began
    missing, pages = _poll(line, due, skip=5000 - 3000)
    assert missing == set()
    assert pages <= 2000 // 75 + 3  # the span's pages and a few more, not the drift's


def test_a_line_that_slows_down_leaves_overlaps_not_gaps() -> None:
    line = GrowingLine(arrivals=[0, 90, 90, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    line.add(3000)
    missing, _ = _poll(line, range(1500, 2500), skip=3000 - 2500)
    assert missing == set()


def test_a_line_sending_at_an_uneven_pace_costs_a_few_extra_pages_and_misses_nothing() -> None:
    pace = random.Random(7)
    line = GrowingLine(arrivals=[0, *(max(0, round(pace.gauss(50, 15))) for _ in range(200))])
    line.add(5000)
    missing, pages = _poll(line, range(1000, 3000), skip=5000 - 3000)
    assert missing == set() and pages <= 2000 // 75 + 5


@pytest.mark.parametrize("history", [1_000, 100_000])
def test_the_pages_follow_the_texts_in_flight_not_the_history(history: int) -> None:
    line = GrowingLine(arrivals=[0])
    line.add(history + 300)  # years of texts, then 300 recent ones of which 200 are due
    due = range(history, history + 200)
    missing, pages = _poll(line, due, skip=100)
    assert missing == set() and pages == 2


class RefusingProvider:
    """A provider that no longer knows the session key: every call is refused."""

    def __init__(self) -> None:
        self.gets = 0

    def get_message(self, session: str, message_id: str) -> ProviderMessage:
        self.gets += 1
        raise ProviderError(ErrorKind.SESSION_INVALID, Classification.SESSION_INVALID, "session unknown")


def test_a_refused_session_key_costs_one_message_get_not_one_per_missing_text() -> None:
    provider = RefusingProvider()
    with ThreadPoolExecutor(8) as pool:
        runtime: Any = SimpleNamespace(client=provider, provider_pool=pool)
        answers = _get_each(runtime, "k", [(i, i, str(i)) for i in range(300)])
    assert provider.gets == 1 and len(answers) == 300
    assert all(
        isinstance(a, ProviderError) and a.classification is Classification.SESSION_INVALID for a in answers
    )
