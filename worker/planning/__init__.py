"""Message planning: a request to send becomes SMS/MMS parts within every provider limit, or a
clear error listing every problem. Pure code: no network, no database, no settings object."""

from worker.planning.errors import IdempotencyConflict, PlanningError, Problem
from worker.planning.files import Attachment, FileInput
from worker.planning.limits import Limits
from worker.planning.numbers import normalize_number
from worker.planning.plan import PartKind, Plan, PlannedPart, plan_message, reassemble

__all__ = [
    "Attachment",
    "FileInput",
    "IdempotencyConflict",
    "Limits",
    "PartKind",
    "Plan",
    "PlannedPart",
    "PlanningError",
    "Problem",
    "normalize_number",
    "plan_message",
    "reassemble",
]
