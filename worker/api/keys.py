"""API keys: made at random, shown once, kept only as a sha256; optionally scoped to lines.

A key is 32 random bytes (256 bits), so a plain sha256 is enough to keep it (no password stretching:
nobody can guess it), and the look-up by hash is also the check. The key says nothing itself of its
id or lines: those are in the database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from worker.store import api_keys as stored
from worker.store.models import utcnow

KEY_PREFIX = "obx_"  # lets secret scanners (and people) recognise a key
SIGNING_PREFIX = "whsec_"


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: a live key, and the lines it may use (None: all)."""

    key_id: int
    lines: frozenset[str] | None

    def may_use(self, line: str | None) -> bool:
        """True if this key may send from or read the line (E.164)."""
        return self.lines is None or line in self.lines


@dataclass(frozen=True)
class NewKey:
    """A key just made: the only time its secret exists outside the client."""

    id: int
    key: str
    signing_secret: str


def key_hash(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_key(engine: Engine, lines: Sequence[str] = (), name: str | None = None) -> NewKey:
    """Make and store a key (scoped to `lines`, E.164, if any); returns it once."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    signing = SIGNING_PREFIX + secrets.token_urlsafe(32)
    key_id = stored.add_key(engine, name, key_hash(key), lines, signing)
    return NewKey(key_id, key, signing)


def list_keys(engine: Engine) -> list[dict[str, object]]:
    """Every key, without its secrets."""
    return [
        {
            "id": r.id,
            "name": r.name,
            "lines": r.lines,
            "created_at": r.created_at.isoformat(),
            "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
        }
        for r in stored.all_keys(engine)
    ]


def revoke_key(engine: Engine, key_id: int) -> bool:
    """Revoke a key (at once: the next request with it is refused); False if there is no such live key."""
    return stored.revoke(engine, key_id, utcnow())


def authenticate(engine: Engine, authorization: str) -> Caller | None:
    """The caller an `Authorization: Bearer <key>` header names, or None for a missing, unknown or
    revoked key."""
    scheme, _, given = authorization.partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given.startswith(KEY_PREFIX) or len(given) > 200:
        return None
    wanted = key_hash(given)
    row = stored.key_by_hash(engine, wanted)
    # Found by its hash already; the constant-time compare keeps it so should the look-up change.
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, wanted):
        return None
    return Caller(row.id or 0, frozenset(row.lines) if row.lines else None)


def signing_secret(engine: Engine, key_id: int) -> str | None:
    """The secret that signs the status callbacks of messages sent with this key."""
    return stored.signing_secret_of(engine, key_id)
