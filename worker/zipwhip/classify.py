"""One place that turns an HTTP outcome into the provider's answer or a classified ProviderError.

Generic rules first (connect error, timeout, 429, 5xx, 401/403), then the body: the envelope's two
failure shapes, with coded failures looked up in the send-code table. Descriptions are built from
the answer, never from the request, so a session key cannot leak into an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from worker.zipwhip.codes import send_code
from worker.zipwhip.errors import Classification, ErrorKind, ProviderError

SEND_METHODS = frozenset({"message/send", "messaging/send"})
OPTED_OUT_CODE = -1234
_INVALID_SESSION = "invalid session"
_SESSION_KEY = re.compile(r"[0-9a-fA-F-]{36}:\d+")


def _clean(text: str, limit: int = 200) -> str:
    return _SESSION_KEY.sub("[session]", " ".join(text.split()))[:limit]


def _unsure(method: str) -> Classification:
    """A send whose answer was lost may have been recorded; anything else can simply be repeated."""
    return Classification.AMBIGUOUS if method in SEND_METHODS else Classification.RETRYABLE


def error_from_exception(error: requests.RequestException, method: str) -> ProviderError:
    """Classify a request that got no HTTP answer."""
    if isinstance(error, requests.ConnectTimeout | requests.exceptions.SSLError) or _never_left(error):
        return ProviderError(
            ErrorKind.CONNECTION_FAILED,
            Classification.RETRYABLE,
            f"could not connect ({type(error).__name__})",
            method=method,
        )
    if isinstance(error, requests.ReadTimeout):
        return ProviderError(
            ErrorKind.TIMED_OUT, _unsure(method), "no answer before the read timeout", method=method
        )
    if isinstance(error, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return ProviderError(
            ErrorKind.TIMED_OUT, _unsure(method), "connection dropped before the answer", method=method
        )
    return ProviderError(
        ErrorKind.CONNECTION_FAILED,
        Classification.RETRYABLE,
        f"request failed ({type(error).__name__})",
        method=method,
    )


def _never_left(error: requests.RequestException) -> bool:
    reason = error.args[0] if error.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def unwrap(response: requests.Response, method: str) -> Mapping[str, Any]:
    """The envelope of a successful answer; raises a classified ProviderError for anything else."""
    status = response.status_code
    if status == 429:
        raise ProviderError(
            ErrorKind.THROTTLED,
            Classification.RETRYABLE,
            "rate limited by the provider",
            http_status=status,
            retry_after_s=_retry_after(response),
            method=method,
        )
    if status >= 500:
        raise ProviderError(
            ErrorKind.SERVER_ERROR,
            Classification.RETRYABLE,
            f"provider error {status}",
            http_status=status,
            method=method,
        )
    if status in (401, 403):
        raise _session_invalid(status, method)
    envelope = _envelope(response, method)
    if envelope.get("success") is True:
        return envelope
    raise _failure(envelope.get("response"), status, method)


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _session_invalid(status: int, method: str) -> ProviderError:
    return ProviderError(
        ErrorKind.SESSION_INVALID,
        Classification.SESSION_INVALID,
        "the session key is not valid (log the line in again)",
        http_status=status,
        method=method,
    )


def _envelope(response: requests.Response, method: str) -> Mapping[str, Any]:
    status = response.status_code
    try:
        envelope = json.loads(response.content)
    except ValueError:
        envelope = None
    if isinstance(envelope, Mapping) and isinstance(envelope.get("success"), bool):
        return envelope
    what = "an empty answer" if not response.content else "an answer that is not the JSON envelope"
    if status >= 400:
        raise ProviderError(
            ErrorKind.REJECTED,
            Classification.PERMANENT,
            f"{what} (HTTP {status})",
            http_status=status,
            method=method,
        )
    raise unparseable(what, method, status)


def unparseable(what: str, method: str, status: int | None = None) -> ProviderError:
    """An answer we cannot read: for a send it may still have been accepted."""
    return ProviderError(
        ErrorKind.UNPARSEABLE, _unsure(method), _clean(what), http_status=status, method=method
    )


def _failure(detail: Any, status: int, method: str) -> ProviderError:
    if isinstance(detail, str):
        if _INVALID_SESSION in detail.lower():
            return _session_invalid(status, method)
        return ProviderError(
            ErrorKind.REJECTED, Classification.PERMANENT, _clean(detail), http_status=status, method=method
        )
    if isinstance(detail, Mapping) and isinstance(detail.get("code"), int | str):
        return _coded(detail, status, method)
    return ProviderError(
        ErrorKind.REJECTED,
        Classification.PERMANENT,
        "failure without a description",
        http_status=status,
        method=method,
    )


def _coded(detail: Mapping[str, Any], status: int, method: str) -> ProviderError:
    try:
        code = int(detail["code"])
    except ValueError:
        return unparseable(f"failure code {detail['code']!r} is not a number", method, status)
    known = send_code(code)
    description = _clean(str(detail.get("desc") or known.description))
    if code == OPTED_OUT_CODE:
        kind, classification = ErrorKind.OPTED_OUT, Classification.PERMANENT
    else:
        kind = ErrorKind.REJECTED
        classification = Classification.RETRYABLE if known.retryable else Classification.PERMANENT
    return ProviderError(kind, classification, description, code=code, http_status=status, method=method)
