"""The provider calls of a batch, concurrently on the process's provider pool; every failure comes
back as a classified error, never an exception."""

from __future__ import annotations

import logging
import time

from worker.infra.metrics import observe_provider_latencies
from worker.infra.runtime import Runtime
from worker.pipeline.liveness import may_send
from worker.pipeline.send.values import Accepted, Claimed
from worker.zipwhip.client import ZipwhipClient
from worker.zipwhip.errors import Classification, ErrorKind, ProviderError

log = logging.getLogger(__name__)


def call_all(runtime: Runtime, claims: list[Claimed]) -> list[Accepted | ProviderError]:
    """Send every claimed part, concurrently on the provider pool; answers in the claims' order."""

    def timed(claimed: Claimed) -> tuple[Accepted | ProviderError, float]:
        wait = claimed.not_before - time.monotonic()
        if wait > 0:  # its line's pace: the previous text of its line went late
            time.sleep(wait)
            if not may_send():  # the worker's liveness was checked before the wait
                return fenced(), 0.0
        started = time.perf_counter()
        answer = call_provider(runtime.client, claimed)
        return answer, time.perf_counter() - started

    # A lone text is sent on this thread; a batch fans out over the provider pool.
    results = [timed(claims[0])] if len(claims) == 1 else list(runtime.provider_pool.map(timed, claims))
    observe_provider_latencies(runtime.redis, [seconds for _, seconds in results])
    return [answer for answer, _ in results]


def fenced() -> ProviderError:
    """What a worker that cannot prove it is alive (it may have been declared dead, and its claims
    handed to reconciliation) answers itself instead of calling the provider: nothing was sent."""
    return ProviderError(
        ErrorKind.CONNECTION_FAILED,
        Classification.RETRYABLE,
        "not sent: this worker is not known to be alive",
    )


def call_provider(client: ZipwhipClient, claimed: Claimed) -> Accepted | ProviderError:
    """Send one part; every failure comes back as a classified error, never an exception."""
    try:
        if claimed.kind == "sms":
            receipt = client.send_sms(claimed.session_key, claimed.recipient, claimed.body)
            return Accepted(receipt.message_id, receipt.fingerprint)
        mms = client.send_mms(claimed.session_key, claimed.recipient, claimed.body or None, claimed.files)
        return Accepted(mms.message_id, None)
    except ProviderError as error:
        return error
    except Exception as error:  # a bug must not lose the message: treat it as "may have been sent"
        log.exception("unexpected error sending %s", claimed.label)
        return ProviderError(
            ErrorKind.UNPARSEABLE, Classification.AMBIGUOUS, f"unexpected {type(error).__name__}"
        )
