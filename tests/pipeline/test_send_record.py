"""The send step's record: each provider answer, turned into a decision, applied to the claimed part
(its state, when it is next looked at, its attempts, its line and the recipient's consent). Real
Redis and both databases; no worker, no provider: the answer is given."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from tests.pipeline.conftest import LINE, OTHER
from tests.pipeline.steps import (
    BODY,
    TO,
    TOKEN,
    answered,
    aware,
    claimed,
    enqueued,
    error,
    line_of,
    message_of,
    part_of,
)
from worker.infra.runtime import Runtime
from worker.pipeline.send.claim import claim_all
from worker.pipeline.send.values import Accepted
from worker.producer.enqueue import TextRequest, enqueue_many
from worker.store.consent import suppress, suppressed_numbers
from worker.store.db import transaction
from worker.store.models import Part, utcnow
from worker.store.schedule import lease
from worker.store.states import LineState, State
from worker.zipwhip.errors import Classification, ErrorKind


def test_an_accepted_send_is_sent_with_its_provider_id_and_a_first_poll(runtime: Runtime) -> None:
    message_id = enqueued(runtime)
    now = utcnow()
    outcome = answered(runtime, claimed(runtime, message_id, now), Accepted("9001", "fp"), now)
    part = part_of(runtime, message_id)
    assert outcome.kind == "sent"
    assert (part.state, part.provider_id, part.fingerprint, part.attempts) == (State.SENT, "9001", "fp", 1)
    assert part.due_at is None and part.dispatched_at is None
    assert aware(part.next_poll_at) == now + timedelta(seconds=runtime.polls.delays_s[0])
    assert message_of(runtime, message_id).state == State.SENT


def test_an_ambiguous_send_goes_to_reconciliation_never_back_to_the_queue(runtime: Runtime) -> None:
    message_id = enqueued(runtime)
    now = utcnow()
    answer = error(ErrorKind.TIMED_OUT, Classification.AMBIGUOUS)
    outcome = answered(runtime, claimed(runtime, message_id, now), answer, now)
    part = part_of(runtime, message_id)
    assert outcome.kind == "unknown"
    assert part.state == State.UNKNOWN and part.provider_id is None
    assert aware(part.unknown_since) == now
    assert aware(part.due_at) == now + timedelta(seconds=runtime.settings.reconcile_delay_s)


def test_a_retryable_refusal_is_due_again_after_a_backoff(runtime: Runtime) -> None:
    message_id = enqueued(runtime)
    now = utcnow()
    answer = error(ErrorKind.SERVER_ERROR, Classification.RETRYABLE)
    outcome = answered(runtime, claimed(runtime, message_id, now), answer, now)
    part = part_of(runtime, message_id)
    assert outcome.kind == "retrying"
    assert (part.state, part.attempts, part.error_kind) == (State.RETRYING, 1, "server_error")
    due = aware(part.due_at)
    assert due is not None and due > now


def test_a_retryable_refusal_after_the_last_attempt_fails_the_text(runtime: Runtime) -> None:
    message_id = enqueued(runtime)
    now = utcnow()
    with transaction(runtime.engine) as session:  # every attempt but the last used up
        attempts = runtime.settings.send_max_attempts - 1
        session.execute(update(Part).where(col(Part.message_id) == message_id).values(attempts=attempts))
    answer = error(ErrorKind.THROTTLED, Classification.RETRYABLE)
    outcome = answered(runtime, claimed(runtime, message_id, now), answer, now)
    part = part_of(runtime, message_id)
    assert outcome.kind == "failed"
    assert part.state == State.FAILED and part.due_at is None
    assert message_of(runtime, message_id).state == State.FAILED


def test_a_permanent_refusal_fails_the_text_with_the_providers_code(runtime: Runtime) -> None:
    message_id = enqueued(runtime)
    now = utcnow()
    answer = error(ErrorKind.REJECTED, Classification.PERMANENT, code=-100)
    outcome = answered(runtime, claimed(runtime, message_id, now), answer, now)
    part = part_of(runtime, message_id)
    assert outcome.kind == "failed"
    assert (part.state, part.error_code) == (State.FAILED, -100)
    assert message_of(runtime, message_id).error_code == -100


def test_an_opted_out_recipient_is_rejected_and_suppressed_on_the_line(runtime: Runtime) -> None:
    message_id = enqueued(runtime)
    now = utcnow()
    answer = error(ErrorKind.OPTED_OUT, Classification.PERMANENT, code=-1234)
    outcome = answered(runtime, claimed(runtime, message_id, now), answer, now)
    assert outcome.kind == "rejected"
    assert part_of(runtime, message_id).state == State.REJECTED
    with transaction(runtime.engine) as session:
        assert TO in suppressed_numbers(session, line_of(runtime).id or 0, [TO])


def test_a_refused_session_key_pauses_the_line_and_gives_the_attempt_back(runtime: Runtime) -> None:
    message_id = enqueued(runtime)
    now = utcnow()
    claim = claimed(runtime, message_id, now)
    outcome = answered(runtime, claim, error(ErrorKind.SESSION_INVALID, Classification.SESSION_INVALID), now)
    part, line = part_of(runtime, message_id), line_of(runtime)
    assert outcome.kind == "waiting"
    assert (part.state, part.attempts, part.due_at, part.dispatched_at) == (State.QUEUED, 0, None, None)
    assert (line.state, line.session_key) == (LineState.NEEDS_LOGIN, None)


def test_an_answer_for_a_part_claimed_again_since_changes_nothing(runtime: Runtime) -> None:
    message_id = enqueued(runtime)
    now = utcnow()
    claim = claimed(runtime, message_id, now)
    with transaction(runtime.engine) as session:  # another delivery of the task took it meanwhile
        session.execute(update(Part).where(col(Part.message_id) == message_id).values(claim_token="task-2"))
    outcome = answered(runtime, claim, Accepted("9001", None), now)
    assert outcome.kind == "late"
    assert part_of(runtime, message_id).state == State.SENDING


@pytest.mark.parametrize(
    ("kind", "classification"),
    [
        (ErrorKind.CONNECTION_FAILED, Classification.RETRYABLE),
        (ErrorKind.UNPARSEABLE, Classification.AMBIGUOUS),
    ],
)
def test_no_refusal_leaves_a_part_sending(
    runtime: Runtime, kind: ErrorKind, classification: Classification
) -> None:
    message_id = enqueued(runtime)
    now = utcnow()
    answered(runtime, claimed(runtime, message_id, now), error(kind, classification), now)
    assert part_of(runtime, message_id).state in (State.RETRYING, State.UNKNOWN)


def test_a_claim_rejects_a_recipient_who_said_stop_to_that_line_only(runtime: Runtime) -> None:
    ids = enqueue_many(runtime, [TextRequest(LINE, TO, BODY), TextRequest(OTHER, TO, BODY)])
    now = utcnow()
    with transaction(runtime.engine) as session:
        suppress(session, line_of(runtime).id or 0, TO, "inbound", now, certain=True)
        part_ids = session.exec(select(Part.id).where(col(Part.message_id).in_(ids))).all()
        assert len(lease(session, [p or 0 for p in part_ids], now, 60.0)) == 2
    with transaction(runtime.engine) as session:  # one batch, two lines
        claims, outcomes = claim_all(session, ids, TOKEN, "worker-1", now)
    assert [c.message_id for c in claims] == [ids[1]]  # the same number on the other line still goes
    assert [(o.message_id, o.kind, o.summary.split(": ")[-1]) for o in outcomes] == [
        (ids[0], "rejected", "recipient opted out")
    ]
