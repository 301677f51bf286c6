"""The one provider error type, with its meaning carried as data.

Callers branch on `classification` (and `kind` for detail), never on the text of a message.
"""

from __future__ import annotations

from enum import StrEnum


class Classification(StrEnum):
    """What the caller may do after a failed call."""

    RETRYABLE = "retryable"  # nothing was sent, or the provider asked for a later try
    PERMANENT = "permanent"  # sending the same thing again will fail the same way
    SESSION_INVALID = "session_invalid"  # the line must log in again; the message waits
    AMBIGUOUS = "ambiguous"  # the request left and no answer came back: it may have been sent


class ErrorKind(StrEnum):
    """Why a call failed, in a few named kinds."""

    CONNECTION_FAILED = "connection_failed"  # the request never reached the provider
    TIMED_OUT = "timed_out"  # read timeout or dropped connection after the request was sent
    THROTTLED = "throttled"  # HTTP 429
    SERVER_ERROR = "server_error"  # HTTP 5xx
    REJECTED = "rejected"  # success=false with a code or a text
    OPTED_OUT = "opted_out"  # -1234: the recipient texted STOP
    SESSION_INVALID = "session_invalid"  # unknown or logged-out session key
    UNPARSEABLE = "unparseable"  # HTML page, empty or truncated JSON, missing fields


class ProviderError(Exception):
    """Raised for every failed provider call; never carries the session key."""

    def __init__(
        self,
        kind: ErrorKind,
        classification: Classification,
        description: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        retry_after_s: float | None = None,
        method: str | None = None,
    ) -> None:
        self.kind = kind
        self.classification = classification
        self.description = description
        self.code = code
        self.http_status = http_status
        self.retry_after_s = retry_after_s
        self.method = method
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.method}: " if self.method else ""
        code = f" (code {self.code})" if self.code is not None else ""
        http = f" [HTTP {self.http_status}]" if self.http_status is not None else ""
        return f"{where}{self.kind.value}, {self.classification.value}{code}: {self.description}{http}"

    def __reduce__(self):  # keep the error picklable across process boundaries
        return (
            _rebuild,
            (
                self.kind,
                self.classification,
                self.description,
                self.code,
                self.http_status,
                self.retry_after_s,
                self.method,
            ),
        )


def _rebuild(kind, classification, description, code, http_status, retry_after_s, method):  # type: ignore[no-untyped-def]
    return ProviderError(
        kind,
        classification,
        description,
        code=code,
        http_status=http_status,
        retry_after_s=retry_after_s,
        method=method,
    )
