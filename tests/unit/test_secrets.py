"""Session keys stay out of reprs and database errors: both end up in logs, tracebacks and Flower."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from worker.pipeline.reconcile import Wanted
from worker.pipeline.send.values import Claimed
from worker.pipeline.track import Due
from worker.store.db import make_engine

KEY = "0b6f2e8a-3c1d-4e5f-9a7b-123456789abc:309626613"


@pytest.mark.parametrize(
    "value",
    [
        Claimed(1, 2, "message 1 part 1/1", "sms", "+12065551234", "hi", KEY, ()),
        Wanted(2, 3, 1, KEY, "+12065551234", "hi", datetime.now(UTC), frozenset()),
        Due(KEY, [], datetime.now(UTC), 0, 0),
    ],
)
def test_no_value_handed_between_steps_shows_its_session_key(value: object) -> None:
    assert KEY not in repr(value) and KEY not in str(value)


def test_a_database_error_does_not_carry_the_statements_parameters(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'secrets.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE line (session_key TEXT UNIQUE)"))
        connection.execute(text("INSERT INTO line VALUES (:key)"), {"key": KEY})
    with pytest.raises(IntegrityError) as caught, engine.begin() as connection:
        connection.execute(text("INSERT INTO line VALUES (:key)"), {"key": KEY})
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)
    engine.dispose()
