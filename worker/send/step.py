"""One send task: claim, call, record, then tell the application what became final."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from worker.dispatch import Outbox
from worker.hooks import notify_final
from worker.logs import message_context
from worker.metrics import count_send_outcomes
from worker.runtime import Runtime
from worker.send.call import call_all
from worker.send.claim import claim_all
from worker.send.record import record_all
from worker.send.values import Outcome
from worker.store.db import transaction
from worker.store.models import utcnow

log = logging.getLogger(__name__)

SUMMARY_DETAIL_MAX = 3  # a batch's summary lists each message up to this many; beyond, it counts


def send_step(runtime: Runtime, message_ids: Sequence[int], token: str) -> str:
    """Run one send task for a batch of messages; returns a short summary for Flower (ids only)."""
    outbox = Outbox()
    with transaction(runtime.engine) as session:
        claims, outcomes = claim_all(session, message_ids, token, utcnow())
    if claims:
        answers = call_all(runtime, claims)
        with transaction(runtime.engine) as session:
            outcomes += record_all(session, runtime, claims, answers, token, utcnow(), outbox)
        outbox.publish()
    count_send_outcomes(runtime.redis, [o.kind for o in outcomes])
    for outcome in outcomes:
        with message_context(outcome.message_id):
            log.info("%s", outcome.summary)
        if outcome.final_state:
            notify_final(runtime.settings.outcome_hook, outcome.message_id, outcome.final_state)
    return summarize(outcomes)


def summarize(outcomes: list[Outcome]) -> str:
    """One line for Flower: each message when there are few, counts by outcome when there are many."""
    if len(outcomes) <= SUMMARY_DETAIL_MAX:
        return "; ".join(o.summary for o in sorted(outcomes, key=lambda o: o.message_id)) or "nothing to do"
    counts = Counter(o.kind for o in outcomes)
    return f"{len(outcomes)} messages: " + ", ".join(f"{n} {kind}" for kind, n in counts.most_common())
