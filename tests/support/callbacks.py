"""An outcome hook for the end-to-end tests: appends "message_id state" to a file."""

from __future__ import annotations

import json
import os


def record_outcome(message_id: int, state: str) -> None:
    """Called by the worker (OUTBOX_OUTCOME_HOOK=tests.support.callbacks:record_outcome)."""
    with open(os.environ["OUTBOX_TEST_HOOK_FILE"], "a", encoding="utf-8") as out:
        out.write(f"{message_id} {state}\n")


def record_inbound(text: dict[str, object]) -> None:
    """Called by the worker (OUTBOX_INBOUND_HOOK=tests.support.callbacks:record_inbound)."""
    with open(os.environ["OUTBOX_TEST_INBOUND_FILE"], "a", encoding="utf-8") as out:
        out.write(json.dumps(text) + "\n")
