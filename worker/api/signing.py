"""Signing status callbacks, the way receivers check them (the README shows the same in a few lines).

`Outbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" under the signing secret>`.
The time is inside what is signed, so a receiver that refuses old times (five minutes) refuses a
replayed call; the event id in the body lets it drop a retried delivery it already took.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Outbox-Signature"
TOLERANCE_S = 300


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC of one call."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, now: float | None = None) -> str:
    """The Outbox-Signature header value for a body sent now."""
    timestamp = int(time.time() if now is None else now)
    return f"t={timestamp},v1={signature(secret, body, timestamp)}"


def verify(
    secret: str, header: str, body: bytes, now: float | None = None, tolerance_s: int = TOLERANCE_S
) -> bool:
    """True if the header signs this body under the secret, at a time within the tolerance."""
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = signature(secret, body, timestamp)
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))
