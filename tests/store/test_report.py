"""`outbox status` shows how many attempts a part used and when the next one is due."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from worker.report import message_report
from worker.store.db import transaction
from worker.store.models import Line, Message, Part, utcnow


def test_a_retrying_part_shows_its_attempts_and_next_attempt(engine: Engine) -> None:
    due = utcnow() + timedelta(seconds=40)
    with transaction(engine) as session:
        line = Line(phone="+15556661234", username="5556661234", state="active")
        session.add(line)
        session.flush()
        message = Message(line_id=line.id or 0, recipient="+12065551234", state="retrying")
        session.add(message)
        session.flush()
        session.add(
            Part(
                message_id=message.id or 0,
                line_id=line.id or 0,
                position=0,
                kind="sms",
                body="hi",
                body_bytes=2,
                payload_bytes=2,
                state="retrying",
                attempts=2,
                due_at=due,
                error_code=-855,
                error_description="Internal Error",
            )
        )
    with transaction(engine) as session:
        report = message_report(session, message.id or 0)
    assert report is not None
    [part] = report["parts"]
    assert part["attempts"] == 2 and part["next_attempt_at"] == due.isoformat()
    assert part["error"] == {"kind": None, "code": -855, "description": "Internal Error"}
