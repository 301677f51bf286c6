"""What the demo and the bench ask of a set of messages: each count reads the states it names."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from worker.store import progress
from worker.store.db import transaction
from worker.store.models import Line, Message, Part, StatusEvent, utcnow
from worker.store.progress import Span
from worker.store.states import State


def _message(session: Session, line_id: int, state: State, kinds: list[tuple[str, State, str | None]]) -> int:
    message = Message(line_id=line_id, recipient="+12065551234", state=state)
    if state in (State.DELIVERED, State.FAILED):
        message.final_at = utcnow()
    session.add(message)
    session.flush()
    for position, (kind, part_state, provider_id) in enumerate(kinds):
        session.add(
            Part(
                message_id=message.id or 0,
                line_id=line_id,
                position=position,
                kind=kind,
                body="hi",
                body_bytes=2,
                payload_bytes=2,
                state=part_state,
                provider_id=provider_id,
            )
        )
    return message.id or 0


def test_counts_follow_the_states_of_a_set_given_as_ids_or_a_span(engine: Engine) -> None:
    with transaction(engine) as session:
        line = Line(phone="+15556661234", username="5556661234", state="active")
        session.add(line)
        session.flush()
        line_id = line.id or 0
        queued = _message(session, line_id, State.QUEUED, [("sms", State.QUEUED, None)])
        sent = _message(session, line_id, State.SENT, [("mms", State.SENT, "1"), ("sms", State.QUEUED, None)])
        delivered = _message(session, line_id, State.DELIVERED, [("sms", State.DELIVERED, "2")])
        failed = _message(session, line_id, State.FAILED, [("sms", State.FAILED, None)])
    every = [queued, sent, delivered, failed]
    with Session(engine) as session:
        for ids in (every, Span(queued, failed)):
            assert progress.parts_not_accepted(session, ids) == 2  # queued + the sent one's 2nd part
            assert progress.parts_sent(session, ids) == 2
            assert progress.messages_not_final(session, ids) == 2
            assert progress.messages_delivered(session, ids) == 1
        assert progress.messages_delivered(session, [queued, sent]) == 0
        assert progress.state_counts(session) == {"queued": 1, "sent": 1, "delivered": 1, "failed": 1}
        timings = {state: final for state, _, final in progress.timings(session, Span(queued, failed))}
        assert timings[State.QUEUED] is None and timings[State.DELIVERED] is not None
        messages, kinds = progress.messages_and_kinds(session, [sent, delivered])
        assert {m.id for m in messages} == {sent, delivered}
        assert kinds == {sent: ["mms", "sms"], delivered: ["sms"]}


def test_the_last_acceptance_is_the_latest_sent_event_of_the_set(engine: Engine) -> None:
    now = utcnow()
    with transaction(engine) as session:
        line = Line(phone="+15556661234", username="5556661234", state="active")
        session.add(line)
        session.flush()
        first = _message(session, line.id or 0, State.SENT, [("sms", State.SENT, "1")])
        second = _message(session, line.id or 0, State.DELIVERED, [("sms", State.DELIVERED, "2")])
        for message_id, state, seconds in (
            (first, State.SENT, 1),
            (second, State.SENT, 2),
            (second, State.DELIVERED, 3),  # later, but not an acceptance
        ):
            event = StatusEvent(
                message_id=message_id, source="worker", state=state, at=now + timedelta(seconds=seconds)
            )
            session.add(event)
    with Session(engine) as session:
        assert progress.last_accepted_at(session, Span(first, second)) == now + timedelta(seconds=2)
        assert progress.last_accepted_at(session, [first]) == now + timedelta(seconds=1)
        assert progress.last_accepted_at(session, [second + 1]) is None
