"""The simulator's knobs (command line and admin endpoint)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from simulator.numbers import e164

SEND_FAULTS = (
    "code:-855",
    "code:-1",
    "http:500",
    "http:429",
    "slow",
    "drop_after_record",
    "drop_before_record",
)
MALFORMED = ("html_200", "empty_200", "truncated_200", "missing_tokens", "numeric_ids")
OUTCOMES = ("ok", *SEND_FAULTS, *MALFORMED)


def default_mix() -> dict[str, float]:
    """Random faults spread evenly over the contract's failure kinds; malformed answers only on request."""
    return {kind: 1.0 for kind in SEND_FAULTS} | {kind: 0.0 for kind in MALFORMED}


@dataclass(frozen=True)
class Faults:
    """What can be changed while the simulator runs (PUT /_sim/faults)."""

    latency_ms: float = 0.0
    delivery_ms: float = 2000.0
    fail_share: float = 0.0
    fault_rate: float = 0.0
    mix: dict[str, float] = field(default_factory=default_mix)
    rate_limit_per_line: float = 0.0
    invalid_session_status: int = 401
    slow_answer_s: float = 15.0

    def updated(self, changes: dict[str, Any]) -> Faults:
        """A copy with some fields changed; unknown fields or bad values raise ValueError."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        if "mix" in changes:
            bad = set(changes["mix"]) - set(OUTCOMES)
            if bad:
                raise ValueError(f"unknown fault kinds: {', '.join(sorted(bad))}")
            changes = {**changes, "mix": {**self.mix, **{k: float(v) for k, v in changes["mix"].items()}}}
        if changes.get("invalid_session_status", 401) not in (200, 401, 403):
            raise ValueError("invalid_session_status must be 200, 401 or 403")
        return replace(self, **changes)


ROLES = ("system", "admin", "operator")


@dataclass(frozen=True)
class Account:
    """A login: a line's own number (System / single-user), or prefix@number (Admin / Operator).

    The role belongs to the account, as in the provider's web app: any prefix may be an Admin.
    Left empty, a prefixed login is an Operator, except the prefix `admin`, which stays an Admin
    as it always was here (the README, the demo and the tests register webhooks with it).
    """

    username: str
    password: str = field(repr=False)
    role: str = ""

    def __post_init__(self) -> None:
        if e164(self.username.rpartition("@")[2]) is None:
            raise ValueError(f"username {self.username!r}: not a phone number (nor prefix@number)")
        if self.role and self.role not in ROLES:
            raise ValueError(
                f"role {self.role!r}: use one of {', '.join(ROLES)}"
                " (a password holding ':' needs a role after it)"
            )
        prefixed = "@" in self.username
        if prefixed and self.role == "system":
            raise ValueError(f"role of {self.username!r}: the System login is the bare line number")
        if not prefixed and self.role not in ("", "system"):
            raise ValueError(f"role of {self.username!r}: a bare line number is the System login")

    @property
    def effective_role(self) -> str:
        """The role given, or the default for the username."""
        if self.role:
            return self.role
        prefix, _, _ = self.username.rpartition("@")
        if not prefix:
            return "system"
        return "admin" if prefix.lower() == "admin" else "operator"


@dataclass(frozen=True)
class SimConfig:
    """Everything the simulator starts with."""

    host: str = "127.0.0.1"
    port: int = 8900
    seed: int | None = None
    accounts: tuple[Account, ...] = ()
    faults: Faults = Faults()
    webhook_retries: int = 3
    body_max_bytes: int = 600
    max_attachments: int = 2
    payload_max_bytes: int = 600 * 1024  # "600 KB", read generously: reject only what surely is too big
    quiet: bool = False


DEMO_ACCOUNTS = (
    Account("5556661234", "demo"),
    Account("admin@5556661234", "demo", "admin"),
    Account("operator@5556661234", "demo", "operator"),
)
