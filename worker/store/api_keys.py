"""The HTTP API's keys as stored: a sha256 of the key (never the key), its lines and its signing
secret. Each operation is its own short transaction: keys change rarely and are read per request."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from worker.store.models import ApiKey


def add_key(
    engine: Engine, name: str | None, key_hash: str, lines: Sequence[str], signing_secret: str
) -> int:
    """Keep a new key (by its hash; scoped to `lines`, E.164, if any); returns its id."""
    row = ApiKey(
        name=name, key_hash=key_hash, lines=sorted(set(lines)) or None, signing_secret=signing_secret
    )
    with Session(engine) as session:
        session.add(row)
        session.commit()
        return row.id or 0


def all_keys(engine: Engine) -> list[ApiKey]:
    """Every key, revoked ones too, oldest first."""
    with Session(engine) as session:
        return list(session.exec(select(ApiKey).order_by(col(ApiKey.id))).all())


def revoke(engine: Engine, key_id: int, now: datetime) -> bool:
    """Revoke a live key; False if there is no such live key."""
    with Session(engine) as session:
        row = session.get(ApiKey, key_id)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = now
        session.add(row)
        session.commit()
        return True


def key_by_hash(engine: Engine, key_hash: str) -> ApiKey | None:
    """The key with this hash, revoked or not (the look-up by hash is the check)."""
    with Session(engine) as session:
        return session.exec(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()


def signing_secret_of(engine: Engine, key_id: int) -> str | None:
    """The secret that signs the status callbacks of messages sent with this key."""
    with Session(engine) as session:
        row = session.get(ApiKey, key_id)
        return row.signing_secret if row else None
