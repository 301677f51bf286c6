"""Consent keywords: a text of STOP (or its kin) suppresses its sender on the line, START lifts it.

The suppression list itself is `worker.store.consent`; this module only reads keywords and applies
them with the time the provider gave the text, so that only the newest word counts.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from worker.store.consent import lift, suppress

# The carrier keywords (CTIA): a reply of exactly one of these changes the recipient's consent.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})


def keyword(body: str | None) -> str | None:
    """ "stop" or "start" when a text is one of the keywords (any case, surrounding spaces), else None."""
    word = (body or "").strip().strip(".!").upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    return None


def apply_keyword(
    session: Session, line_id: int, number: str, body: str | None, at: datetime, source: str
) -> str | None:
    """Apply the consent change a keyword text sent at `at` makes, unless a later change is already
    recorded; returns "stop" or "start" when it took effect, else None.

    Call it once per received text (when the text is first recorded): a replay must not count again.
    """
    change = keyword(body)
    if change == "stop" and suppress(session, line_id, number, source, at, certain=False):
        return change
    if change == "start" and lift(session, line_id, number, source, at, certain=False):
        return change
    return None
