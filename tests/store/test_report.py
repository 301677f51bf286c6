"""`outbox status` shows how many attempts a part used and when the next one is due."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from tests.store.rows import stored_texts
from worker.report import message_report
from worker.store.db import transaction
from worker.store.models import utcnow


def test_a_retrying_part_shows_its_attempts_and_next_attempt(engine: Engine) -> None:
    due = utcnow() + timedelta(seconds=40)
    retrying = {"state": "retrying", "attempts": 2, "due_at": due, "error_code": -855}
    [(message_id, _)] = stored_texts(
        engine,
        message={"state": "retrying"},
        part={**retrying, "error_description": "Internal Error"},
    )
    with transaction(engine) as session:
        report = message_report(session, message_id)
    assert report is not None
    [part] = report["parts"]
    assert part["attempts"] == 2 and part["next_attempt_at"] == due.isoformat()
    assert part["error"] == {"kind": None, "code": -855, "description": "Internal Error"}
