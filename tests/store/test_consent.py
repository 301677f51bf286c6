"""Consent is never undone by a replay: a STOP/START text counts once, when it is first recorded, and
only if it is newer than the last change known for the number, whatever order the texts arrive in
(a provider's retry of an old START, a sync that reads newest first)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from worker.inbound.messages import record_provider_message
from worker.inbound.optouts import apply_keyword
from worker.store.consent import lift, suppress, suppressed_numbers, suppressed_pairs
from worker.store.db import transaction
from worker.store.models import Line, utcnow
from worker.zipwhip.results import ProviderMessage

NUMBER = "+12065550123"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=utcnow().tzinfo)


def _line(session: Session, phone: str = "+15556661234") -> int:
    line = Line(phone=phone, username=phone[2:], state="active")
    session.add(line)
    session.flush()
    return line.id or 0


def _suppressed(engine: Engine, line_id: int) -> bool:
    with transaction(engine) as session:
        return NUMBER in suppressed_numbers(session, line_id, [NUMBER])


def _word(engine: Engine, line_id: int, body: str, minutes: int) -> str | None:
    with transaction(engine) as session:
        return apply_keyword(session, line_id, NUMBER, body, T0 + timedelta(minutes=minutes), "inbound")


@pytest.fixture
def line_id(engine: Engine) -> int:
    with transaction(engine) as session:
        return _line(session)


def test_an_old_start_arriving_after_a_newer_stop_changes_nothing(engine: Engine, line_id: int) -> None:
    assert _word(engine, line_id, "STOP", 10) == "stop"
    assert _word(engine, line_id, "START", 5) is None  # sent before the STOP, arriving after it
    assert _suppressed(engine, line_id)


def test_texts_met_newest_first_leave_the_newest_word_in_force(engine: Engine, line_id: int) -> None:
    # START at 1, STOP at 2, read newest first (as a sync reads a conversation)
    assert _word(engine, line_id, "stop", 2) == "stop"
    assert _word(engine, line_id, "start", 1) is None
    assert _suppressed(engine, line_id)
    # and the other way round: STOP at 3, START at 4, read newest first
    assert _word(engine, line_id, "START", 4) == "start"
    assert _word(engine, line_id, "STOP", 3) is None
    assert not _suppressed(engine, line_id)


def test_a_later_start_lifts_and_a_later_stop_suppresses_again(engine: Engine, line_id: int) -> None:
    assert _word(engine, line_id, "STOP", 1) == "stop"
    assert _word(engine, line_id, "UNSTOP", 2) == "start"
    assert not _suppressed(engine, line_id)
    assert _word(engine, line_id, "Quit", 3) == "stop"
    assert _suppressed(engine, line_id)
    assert _word(engine, line_id, "START", 3) is None  # at the same moment as a STOP, START loses
    assert _suppressed(engine, line_id)


def test_the_providers_own_word_suppresses_whatever_the_clocks_say(engine: Engine, line_id: int) -> None:
    assert _word(engine, line_id, "START", 60) == "start"  # nothing to lift yet, but its time is kept
    with transaction(engine) as session:  # -1234 at our clock, behind the provider's
        assert suppress(session, line_id, NUMBER, "send:-1234", T0, certain=True)
    assert _suppressed(engine, line_id)
    assert _word(engine, line_id, "START", 30) is None  # older than the START already known
    assert _word(engine, line_id, "START", 90) == "start"  # a real, newer START still lifts it


def test_an_operator_lifts_and_suppresses_by_hand(engine: Engine, line_id: int) -> None:
    assert _word(engine, line_id, "STOP", 10) == "stop"
    with transaction(engine) as session:
        assert lift(session, line_id, NUMBER, "manual", T0, certain=True)
    assert not _suppressed(engine, line_id)


def test_a_received_text_is_kept_per_line_never_found_on_another(engine: Engine) -> None:
    with transaction(engine) as session:
        line_a, line_b = _line(session, "+15556661234"), _line(session, "+15556669999")
    text = ProviderMessage(id="777", type="MO", body="STOP", source_address=NUMBER, address=f"ptn:/{NUMBER}")
    with transaction(engine) as session:
        a = session.get(Line, line_a)
        assert a is not None
        row_a, created_a = record_provider_message(session, a, text, "webhook", utcnow())
        b = session.get(Line, line_b)
        assert b is not None
        row_b, created_b = record_provider_message(session, b, text, "webhook", utcnow())
    assert created_a and created_b  # the same provider id on another line is another text
    assert row_a is not None and row_b is not None
    assert (row_a.line_id, row_b.line_id) == (line_a, line_b)


def test_a_batch_of_many_lines_is_checked_pair_by_pair(engine: Engine, line_id: int) -> None:
    other = "+12065550999"
    with transaction(engine) as session:
        second = _line(session, "+15556667777")
        suppress(session, line_id, NUMBER, "inbound", T0, certain=True)
        suppress(session, second, other, "inbound", T0, certain=True)
        suppress(session, second, NUMBER, "inbound", T0, certain=True)
        lift(session, second, NUMBER, "inbound", T0 + timedelta(minutes=1), certain=True)
    asked = [(line_id, NUMBER), (line_id, other), (second, NUMBER), (second, other)]
    with transaction(engine) as session:
        # each line's own STOPs only: neither line's STOP spills over to the other line
        assert suppressed_pairs(session, asked) == {(line_id, NUMBER), (second, other)}
        assert suppressed_pairs(session, []) == set()
