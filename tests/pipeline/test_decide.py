"""What a provider answer does to a part: every classification × error kind, below and at the
attempt limit, and every outcome of a reconciliation's search."""

from __future__ import annotations

from datetime import timedelta
from itertools import product

import pytest

from worker.pipeline.decide import Decision, Search, decide_search, decide_send
from worker.pipeline.retry import RetryPolicy
from worker.zipwhip.errors import Classification, ErrorKind, ProviderError

POLICY = RetryPolicy(max_attempts=3)
C, K, D = Classification, ErrorKind, Decision

# (classification, kind) -> (decision with attempts left, decision with none left), written out as the
# rules read: a refused session waits for a login, an unsure send is reconciled, a retryable refusal is
# retried until its attempts run out, a permanent one fails (or rejects, for a recipient who said STOP).
EXPECTED = {
    C.SESSION_INVALID: (D.AWAIT_LOGIN, D.AWAIT_LOGIN),
    C.AMBIGUOUS: (D.RECONCILE, D.RECONCILE),
    C.RETRYABLE: (D.RETRY, D.GIVE_UP),
    C.PERMANENT: (D.FAIL, D.FAIL),
}


@pytest.mark.parametrize(("classification", "kind"), list(product(Classification, ErrorKind)))
def test_every_classification_and_kind(classification: Classification, kind: ErrorKind) -> None:
    error = ProviderError(kind, classification, "a reason", code=-1)
    left, exhausted = EXPECTED[classification]
    if classification is C.PERMANENT and kind is K.OPTED_OUT:
        left = exhausted = D.OPTED_OUT
    assert decide_send(error, 1, POLICY) is left
    assert decide_send(error, 3, POLICY) is exhausted


def test_an_accepted_send_is_sent_whatever_its_attempts() -> None:
    assert decide_send(None, 1, POLICY) is D.SENT
    assert decide_send(None, 99, POLICY) is D.SENT


SETTLE = timedelta(seconds=30)
EARLY, LATE = timedelta(seconds=5), timedelta(seconds=31)
REFUSED = ProviderError(K.SESSION_INVALID, C.SESSION_INVALID, "the key is dead")
FLAKY = ProviderError(K.SERVER_ERROR, C.RETRYABLE, "HTTP 500")


@pytest.mark.parametrize(
    ("search", "since", "attempts", "expected"),
    [
        (Search(found=True), EARLY, 1, D.SENT),
        (Search(found=True), LATE, 3, D.SENT),  # found settles it, attempts or not
        (Search(found=False), EARLY, 1, D.LOOK_AGAIN),  # absence proves nothing yet
        (Search(found=False), LATE, 1, D.SEND_AGAIN),
        (Search(found=False), LATE, 3, D.GIVE_UP),
        (Search(found=False, error=FLAKY), LATE, 1, D.LOOK_AGAIN),  # a failed search proves nothing
        (Search(found=False, error=REFUSED), LATE, 1, D.AWAIT_LOGIN),
    ],
)
def test_every_outcome_of_a_search(
    search: Search, since: timedelta, attempts: int, expected: Decision
) -> None:
    assert decide_search(search, since, SETTLE, attempts, POLICY) is expected
