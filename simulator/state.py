"""The simulated provider's memory: lines and logins, sessions, messages, opt-outs, hooks, contacts."""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from simulator.config import Account, Faults, SimConfig
from simulator.numbers import e164

FIRST_MESSAGE_ID = 327_559_093_363_723_008  # above 2^53, like the provider's
FAILURE_REASONS = (1106, 1116, 1150, 1105, 1111, 1201)
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})


@dataclass(frozen=True)
class Login:
    """Who a session key belongs to."""

    line: str  # E.164
    role: str  # system | admin | operator
    username: str | None
    device_id: int


@dataclass
class StoredFile:
    """An attachment the simulator received."""

    name: str
    content_type: str
    size: int
    sha256: str


@dataclass
class Message:
    """A message the provider holds, sent (ZO) or received (MO)."""

    id: int
    line: str
    other: str  # the recipient of a ZO, the sender of an MO
    body: str
    direction: str  # "ZO" | "MO"
    created: float
    delivery_s: float
    final_code: int
    final_status: int
    device_id: int
    contact_id: int
    files: list[StoredFile] = field(default_factory=list)
    from_name: str | None = None  # message/send's `fromName`
    read: bool = True  # a received text starts unread
    deleted: bool = False  # by message/delete or conversation/delete: gone from lists and gets

    @property
    def fingerprint(self) -> str:
        """The conversation's id: stable per (line, other party)."""
        return str(int(hashlib.sha1(f"{self.line}|{self.other}".encode()).hexdigest()[:8], 16))


@dataclass
class Hook:
    """A registered webhook."""

    id: int
    line: str
    type: str
    event: str
    url: str
    method: str = "POST"

    def as_json(self) -> dict[str, Any]:
        return {
            "webhookId": self.id,
            "type": self.type,
            "event": self.event,
            "url": self.url,
            "method": self.method,
        }


@dataclass
class Script:
    """What sends to one recipient get, set by a test through /_sim/script."""

    outcomes: deque[str] = field(default_factory=deque)
    delivery: tuple[int, int] | None = None


class World:
    """All simulated state; touched only from the event loop (no locks needed)."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.passwords: dict[str, str] = {}  # username -> password
        self.roles: dict[str, tuple[str, str]] = {}  # username -> (line, role)
        self.devices: dict[str, int] = {}
        self.sessions: dict[str, Login] = {}
        for account in config.accounts:
            self.add_account(account)
        self.reset()

    def forget_messages(self) -> int:
        """Drop every message (a long benchmark's earlier rounds); returns how many there were."""
        count = len(self.messages)
        self.messages.clear()
        self.by_line.clear()
        return count

    def reset(self) -> None:
        """Forget messages, counters, scripts, opt-outs, hooks, contacts and fault changes."""
        self.faults: Faults = self.config.faults
        self.messages: dict[int, Message] = {}
        self.by_line: dict[str, list[int]] = {}
        self.next_id = FIRST_MESSAGE_ID
        self.opted_out: set[tuple[str, str]] = set()
        self.hooks: dict[int, Hook] = {}
        self.next_hook = 687_557_714
        self.contacts: dict[str, dict[int, dict[str, Any]]] = {}
        self.next_contact = 1_989_548_603
        self.calls: Counter[str] = Counter()
        self.sends: Counter[tuple[str, str, str, tuple[str, ...]]] = Counter()
        self.scripts: dict[str, Script] = {}
        self.buckets: dict[str, float] = {}

    # Accounts and sessions

    def add_account(self, account: Account) -> None:
        """Register a login with its role (the line's own number is the System login)."""
        prefix, _, number = account.username.rpartition("@")
        line = e164(number)
        if line is None:
            raise ValueError(f"account {account.username!r}: not a phone number")
        key = f"{prefix}@{line[-10:]}" if prefix else line[-10:]
        self.passwords[key] = account.password
        self.roles[key] = (line, account.effective_role)
        self.devices.setdefault(line, 309_626_613 + len(self.devices))

    def login(self, username: str, password: str) -> str | None:
        """A new session key, or None if the username or password is wrong."""
        prefix, _, number = username.rpartition("@")
        line = e164(number)
        key = (f"{prefix}@{line[-10:]}" if prefix else line[-10:]) if line else username
        if self.passwords.get(key) != password:
            return None
        line_number, role = self.roles[key]
        device = self.devices[line_number]
        session = f"{uuid.UUID(int=self.rng.getrandbits(128), version=4)}:{device}"
        self.sessions[session] = Login(line_number, role, prefix or None, device)
        return session

    def invalidate(self, line: str) -> int:
        """End every session of a line (what a password change would do)."""
        dead = [key for key, login in self.sessions.items() if login.line == line]
        for key in dead:
            del self.sessions[key]
        return len(dead)

    # Messages

    def new_id(self) -> int:
        """A fresh 64-bit message id."""
        self.next_id += self.rng.randint(1, 4096)
        return self.next_id

    def record(
        self,
        line: str,
        other: str,
        body: str,
        direction: str,
        files: list[StoredFile],
        from_name: str | None = None,
    ) -> Message:
        """Keep a message and count the send (for duplicate detection)."""
        code, status = self._fate(other) if direction == "ZO" else (4, 1003)
        message = Message(
            id=self.new_id(),
            line=line,
            other=other,
            body=body,
            direction=direction,
            created=time.time(),
            delivery_s=self.faults.delivery_ms / 1000,
            final_code=code,
            final_status=status,
            device_id=self.devices.get(line, 0),
            contact_id=self.contact_for(line, other),
            files=files,
            from_name=from_name,
            read=direction == "ZO",
        )
        self.messages[message.id] = message
        self.by_line.setdefault(line, []).append(message.id)
        if direction == "ZO":
            self.sends[(line, other, body, tuple(f.sha256 for f in files))] += 1
        return message

    def _fate(self, recipient: str) -> tuple[int, int]:
        script = self.scripts.get(recipient)
        if script and script.delivery:
            return script.delivery
        if self.rng.random() < self.faults.fail_share:
            return 5, self.rng.choice(FAILURE_REASONS)
        return 4, 1003

    def contact_for(self, line: str, number: str) -> int:
        """The id of the line's contact for a number, made on first use."""
        contacts = self.contacts.setdefault(line, {})
        for contact_id, contact in contacts.items():
            if contact.get("mobileNumber") == number:
                return contact_id
        self.next_contact += 1
        contacts[self.next_contact] = {"id": self.next_contact, "mobileNumber": number}
        return self.next_contact

    def contact_of(self, message: Message) -> dict[str, Any] | None:
        """The line's contact a message names (None once the contact is deleted)."""
        return self.contacts.get(message.line, {}).get(message.contact_id)

    def own_message(self, line: str, raw_id: str) -> Message | None:
        """A message of the line by its id as sent on the wire; None if unknown, another line's or
        deleted."""
        try:
            message = self.messages.get(int(raw_id))
        except ValueError:
            return None
        return message if message and message.line == line and not message.deleted else None

    def delete(self, messages: list[Message]) -> None:
        """Hide messages from every list and get (they stay counted in the admin counters)."""
        gone = {m.id for m in messages}
        for message in messages:
            message.deleted = True
        for line in {m.line for m in messages}:
            self.by_line[line] = [i for i in self.by_line.get(line, []) if i not in gone]

    def newest_first(self, line: str) -> list[Message]:
        """The line's messages, newest first (what conversation/list groups)."""
        return [self.messages[i] for i in reversed(self.by_line.get(line, []))]

    def newest_page(self, line: str, start: int, limit: int) -> tuple[list[Message], int]:
        """One page of the line's messages, newest first, and how many it has: message/list pages
        through a long history without copying it."""
        ids = self.by_line.get(line, [])
        end = max(0, len(ids) - start)
        return [self.messages[i] for i in reversed(ids[max(0, end - limit) : end])], len(ids)

    # Faults and limits

    def outcome(self, recipient: str) -> str:
        """What this send gets: the recipient's script first, then random faults."""
        script = self.scripts.get(recipient)
        if script and script.outcomes:
            return script.outcomes.popleft()
        faults = self.faults
        if faults.fault_rate <= 0 or self.rng.random() >= faults.fault_rate:
            return "ok"
        kinds = [k for k, w in faults.mix.items() if w > 0]
        if not kinds:
            return "ok"
        return self.rng.choices(kinds, weights=[faults.mix[k] for k in kinds])[0]

    def over_rate(self, line: str) -> float | None:
        """Seconds to wait if this send would exceed the line's rate, else None (token bucket of 1)."""
        rate = self.faults.rate_limit_per_line
        if rate <= 0:
            return None
        now = time.monotonic()
        free_at = self.buckets.get(line, 0.0)
        if free_at > now:
            return free_at - now
        self.buckets[line] = max(free_at, now - 1 / rate) + 1 / rate
        return None

    def text_in(self, line: str, sender: str, body: str) -> tuple[Message, str | None]:
        """An inbound text; STOP-family words opt the sender out, START-family words opt them in."""
        message = self.record(line, sender, body, "MO", [])
        word = body.strip().upper()
        change = None
        if word in STOP_WORDS:
            self.opted_out.add((line, sender))
            change = "stop"
        elif word in START_WORDS:
            self.opted_out.discard((line, sender))
            change = "start"
        return message, change
