"""Phone numbers as the provider shows them: E.164 inside, 10 digits or ptn:/ on the wire."""

from __future__ import annotations

import re


def e164(raw: str) -> str | None:
    """`+12065551234` for a 10-digit, E.164 or ptn:/ US number; None if it is not one."""
    digits = re.sub(r"[^\d]", "", raw.strip().removeprefix("ptn:/"))
    if len(digits) == 10:
        return "+1" + digits
    if len(digits) == 11 and digits.startswith("1"):
        return "+" + digits
    return None


def ptn(number: str) -> str:
    """The `address` form: ptn:/ and ten digits."""
    return "ptn:/" + number[-10:]


def national(number: str) -> str:
    """Ten digits, as the provider shows a line."""
    return number[-10:]
