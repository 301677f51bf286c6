"""The sweeper: a claim held past the claim timeout (its worker died mid-call) goes to reconciliation,
never back to the queue; a text past its expiry is rejected, not sent late; what waited for a line
that is active again is due. Real Redis and both databases; the sweep is run at a given moment."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col

from tests.pipeline.steps import aware, claimed, enqueued, message_of, part_of
from worker.infra.runtime import Runtime
from worker.pipeline.sweep import sweep
from worker.store.db import transaction
from worker.store.models import Part, utcnow
from worker.store.states import State


def test_a_claim_held_past_the_timeout_goes_to_reconciliation(runtime: Runtime) -> None:
    message_id = enqueued(runtime)
    now = utcnow()
    claimed(runtime, message_id, now)
    later = now + timedelta(seconds=runtime.settings.claim_timeout_s + 1)
    counts = sweep(runtime, later)
    part = part_of(runtime, message_id)
    assert counts["lost_claims"] == 1
    assert part.state == State.UNKNOWN and part.provider_id is None
    assert aware(part.unknown_since) == later and aware(part.due_at) == later


def test_a_claim_within_the_timeout_is_left_to_its_worker(runtime: Runtime) -> None:
    message_id = enqueued(runtime)
    now = utcnow()
    claimed(runtime, message_id, now)
    counts = sweep(runtime, now + timedelta(seconds=runtime.settings.claim_timeout_s / 2))
    assert counts["lost_claims"] == 0
    assert part_of(runtime, message_id).state == State.SENDING


def test_a_text_past_its_expiry_is_rejected_not_sent_late(runtime: Runtime) -> None:
    message_id = enqueued(runtime, expires_at=utcnow() + timedelta(hours=1))
    counts = sweep(runtime, utcnow() + timedelta(hours=2))
    assert counts["expired"] == 1
    assert part_of(runtime, message_id).state == State.REJECTED
    assert message_of(runtime, message_id).state == State.REJECTED


def test_a_part_waiting_for_a_login_on_an_active_line_is_due_again(runtime: Runtime) -> None:
    message_id = enqueued(runtime)
    with transaction(runtime.engine) as session:  # it waited for a login the line has had since
        session.execute(update(Part).where(col(Part.message_id) == message_id).values(due_at=None))
    now = utcnow()
    counts = sweep(runtime, now)
    assert counts["resumed"] == 1
    assert aware(part_of(runtime, message_id).due_at) == now
