"""One send task: claim, call, record, then tell the application what became final."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from worker.callbacks import notify_final
from worker.infra.logs import message_context
from worker.infra.metrics import count_send_outcomes
from worker.infra.runtime import Runtime
from worker.pipeline.dispatch import Outbox
from worker.pipeline.liveness import may_send
from worker.pipeline.retry import INFRASTRUCTURE_ERRORS
from worker.pipeline.send.call import call_all, fenced
from worker.pipeline.send.claim import claim_all
from worker.pipeline.send.pace import LinePace
from worker.pipeline.send.record import record_all
from worker.pipeline.send.values import Accepted, Claimed, Outcome
from worker.pipeline.summary import batch_summary
from worker.store.db import transaction
from worker.store.models import utcnow
from worker.store.record import quarantine
from worker.store.states import Source
from worker.zipwhip.errors import ProviderError

log = logging.getLogger(__name__)


def send_step(runtime: Runtime, message_ids: Sequence[int], token: str, worker: str = "") -> str:
    """Run one send task for a batch of messages; returns a short summary for Flower (ids only).

    `token` is the task's delivery (a redelivery finds its own claims); `worker` the worker running it
    (its claims come back at once if it dies)."""
    claims, outcomes = _claim(runtime, list(message_ids), token, worker)
    if claims:
        answers: list[Accepted | ProviderError] = (
            call_all(runtime, claims) if may_send() else [fenced() for _ in claims]
        )
        outcomes += _record(runtime, claims, answers, token)
    count_send_outcomes(runtime.redis, [(o.kind, o.priority or "normal") for o in outcomes])
    for outcome in outcomes:
        with message_context(outcome.message_id):
            log.info("%s", outcome.summary)
        if outcome.final_state:
            notify_final(runtime.settings.outcome_hook, outcome.message_id, outcome.final_state)
    return summarize(outcomes)


def _claim(runtime: Runtime, ids: list[int], token: str, worker: str) -> tuple[list[Claimed], list[Outcome]]:
    """Claim the batch in one transaction. If that raises (and not for a database or Redis outage,
    which Celery retries), claim each text on its own: one poison text (a bug, a bad row) is then
    quarantined alone instead of sinking the batch with it, again on every release."""
    try:
        with transaction(runtime.engine) as session:
            return claim_all(session, ids, token, worker, utcnow(), LinePace(runtime))
    except INFRASTRUCTURE_ERRORS:
        raise
    except Exception as error:
        if len(ids) == 1:
            log.exception("message %s could not be claimed; quarantined", ids[0])
            return [], [_quarantine(runtime, ids[0], error)]
        log.warning("claiming a batch of %s raised %s; claiming its texts one by one", len(ids), error)
    claims: list[Claimed] = []
    outcomes: list[Outcome] = []
    for message_id in ids:
        claimed, outcome = _claim(runtime, [message_id], token, worker)
        claims += claimed
        outcomes += outcome
    return claims, outcomes


def _quarantine(runtime: Runtime, message_id: int, error: Exception) -> Outcome:
    reason = f"could not be claimed for sending ({type(error).__name__}; see the worker log)"
    try:
        with transaction(runtime.engine) as session:
            state = quarantine(session, message_id, reason, Source.SEND, utcnow())
    except INFRASTRUCTURE_ERRORS:
        raise
    except Exception:  # the rest of the batch still goes; releases bound this one (max_releases_per_part)
        log.exception("message %s could not be quarantined either", message_id)
        return Outcome(message_id, f"message {message_id}: could not be claimed", "skipped")
    return Outcome(message_id, f"message {message_id}: quarantined: {reason}", "failed", state)


def _record(
    runtime: Runtime,
    claims: list[Claimed],
    answers: list[Accepted | ProviderError],
    token: str,
) -> list[Outcome]:
    """Record every answer in one transaction (then publish what it decided: the next parts of
    messages going on); if that raises (not an outage), each on its own, so that one answer that
    cannot be recorded does not lose the others. Its part stays claimed: the sweeper finds the claim
    expired and reconciles it with the provider (it may have been sent)."""
    outbox = Outbox()
    try:
        with transaction(runtime.engine) as session:
            outcomes = record_all(session, runtime, claims, answers, token, utcnow(), outbox)
            outbox.journal(runtime.redis)
        outbox.publish()
        return outcomes
    except INFRASTRUCTURE_ERRORS:
        raise
    except Exception as error:
        if len(claims) == 1:
            log.exception("the answer for %s could not be recorded; left for reconciliation", claims[0].label)
            return [Outcome(claims[0].message_id, f"{claims[0].label}: answer not recorded", "unrecorded")]
        log.warning("recording a batch of %s raised %s; recording one by one", len(claims), error)
    outcomes = []
    for claimed, answer in zip(claims, answers, strict=True):
        outcomes += _record(runtime, [claimed], [answer], token)
    return outcomes


def summarize(outcomes: list[Outcome]) -> str:
    """One line for Flower: each message when there are few, counts by outcome when there are many."""
    ordered = sorted(outcomes, key=lambda o: o.message_id)
    priorities = Counter(o.priority for o in outcomes if o.priority)
    mix = f" ({', '.join(f'{n} {p}' for p, n in priorities.most_common())})" if priorities else ""
    return batch_summary([o.summary for o in ordered], [o.kind for o in ordered], mix)
