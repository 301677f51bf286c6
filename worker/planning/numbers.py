"""Phone numbers to E.164, with a clear error for anything that cannot be texted.

Recipients must be valid numbers of a kind that receives texts. The sending line only has to be
possible: the provider proves it at login, and its examples use the fictional 555 area code
(e.g. 5556661234). For tests, +1 206 555 0100..9999 are valid mobile-or-fixed US numbers.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from worker.planning.errors import PlanningError, Problem
from worker.planning.limits import Limits

SHOWN_MAX = 40  # characters of a bad number quoted in its error

_TEXTABLE = frozenset(
    {
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
        PhoneNumberType.VOIP,
        PhoneNumberType.TOLL_FREE,
        PhoneNumberType.PERSONAL_NUMBER,
    }
)


def normalize_number(raw: object, *, field: str, limits: Limits = Limits()) -> str:
    """The number in E.164 (`+12065551234`); raises PlanningError naming the field and value."""
    if not isinstance(raw, str) or not raw.strip():
        raise PlanningError([Problem(field, "a phone number is required")])
    text = raw.strip().removeprefix("ptn:/")
    shown = repr(raw) if len(raw) <= SHOWN_MAX else repr(raw[:SHOWN_MAX]) + "…"  # errors stay short
    try:
        number = phonenumbers.parse(text, limits.default_region)
    except NumberParseException:
        raise PlanningError([Problem(field, f"{shown} is not a phone number")]) from None
    if number.country_code not in limits.allowed_country_codes:
        allowed = ", ".join(f"+{c}" for c in limits.allowed_country_codes)
        raise PlanningError(
            [Problem(field, f"{shown}: +{number.country_code} numbers cannot be texted ({allowed})")]
        )
    if field == "line":
        if not phonenumbers.is_possible_number(number):
            raise PlanningError([Problem(field, f"{shown} is not a possible phone number")])
    elif not phonenumbers.is_valid_number(number):
        raise PlanningError([Problem(field, f"{shown} is not a valid phone number")])
    elif phonenumbers.number_type(number) not in _TEXTABLE:
        raise PlanningError([Problem(field, f"{shown} cannot receive texts (not a mobile number)")])
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
