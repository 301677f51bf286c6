"""What an answer of the provider does to a part, decided apart from doing it.

Pure functions of plain values: the send step, reconciliation and the sweeper apply the `Decision`
(`worker.outcomes`), and a table test covers every classification and error kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from worker.pipeline.retry import RetryPolicy
from worker.zipwhip.errors import Classification, ErrorKind, ProviderError


class Decision(StrEnum):
    """The next step of a part after an answer (or a search) about it."""

    SENT = "sent"  # the provider has it: keep its id, poll for delivery
    RETRY = "retry"  # refused for now: try again after a backoff
    GIVE_UP = "give_up"  # refused for now, but its attempts are used up: failed
    FAIL = "fail"  # refused for good: failed, with the provider's reason
    OPTED_OUT = "opted_out"  # the recipient texted STOP: rejected, and suppressed on the line
    RECONCILE = "reconcile"  # the outcome is unknown: look for it at the provider before anything else
    LOOK_AGAIN = "look_again"  # not found (or the search failed), too soon to conclude: search later
    SEND_AGAIN = "send_again"  # proven absent at the provider: due for sending again
    AWAIT_LOGIN = "await_login"  # the line's session key was refused: wait for `outbox line add`


def decide_send(answer: ProviderError | None, attempts: int, policy: RetryPolicy) -> Decision:
    """The decision for a send's answer (None: accepted) after `attempts` attempts."""
    if answer is None:
        return Decision.SENT
    match answer.classification:
        case Classification.SESSION_INVALID:
            return Decision.AWAIT_LOGIN
        case Classification.AMBIGUOUS:
            return Decision.RECONCILE
        case Classification.RETRYABLE:
            return Decision.GIVE_UP if policy.exhausted(attempts) else Decision.RETRY
    return Decision.OPTED_OUT if answer.kind is ErrorKind.OPTED_OUT else Decision.FAIL


@dataclass(frozen=True)
class Search:
    """What a reconciliation learned: found at the provider, absent, or the search itself failed."""

    found: bool
    error: ProviderError | None = None


def decide_search(
    search: Search, since_attempt: timedelta, settle: timedelta, attempts: int, policy: RetryPolicy
) -> Decision:
    """The decision for a part with an unknown outcome after looking for it at the provider.

    Absence proves nothing until `settle` has passed since the attempt (a request may still land);
    after that the part is sent again, unless its attempts are used up.
    """
    if search.error is not None:
        if search.error.classification is Classification.SESSION_INVALID:
            return Decision.AWAIT_LOGIN
        return Decision.LOOK_AGAIN
    if search.found:
        return Decision.SENT
    if since_attempt < settle:
        return Decision.LOOK_AGAIN
    return Decision.GIVE_UP if policy.exhausted(attempts) else Decision.SEND_AGAIN
