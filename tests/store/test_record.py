"""The one status writer decides on rows read under the message's lock, never on a stale copy.

On PostgreSQL a webhook handler may load a part, then wait for the message's lock while a poll
delivers it; deciding on the copy loaded first would record "sent" after "delivered" and overwrite
the final statusCode (the chaos suite's webhook scenario found exactly that). SQLite serialises
writers with BEGIN IMMEDIATE, so the race only exists on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from tests.store.rows import stored_texts
from tests.support.services import throwaway_postgres
from worker.pipeline.delivery import record_status
from worker.store.db import make_engine, migrate, transaction
from worker.store.models import Part, utcnow
from worker.store.record import lock_message
from worker.store.states import Source


@pytest.fixture
def postgres() -> Iterator[Engine]:
    with throwaway_postgres() as url:
        engine = make_engine(url)
        migrate(engine)
        yield engine
        engine.dispose()


def _sent_part(engine: Engine) -> int:
    sent = {"state": "sent", "provider_id": "1001", "status_code": 1}
    [(_, part_id)] = stored_texts(engine, message={"state": "sent"}, part=sent)
    return part_id


def test_a_part_loaded_before_the_lock_is_read_again_under_it(postgres: Engine) -> None:
    part_id = _sent_part(postgres)
    with transaction(postgres) as late:
        stale = late.exec(select(Part).where(Part.id == part_id)).one()  # loaded, not locked
        with transaction(postgres) as poll:  # meanwhile a poll delivers it
            part = poll.exec(select(Part).where(Part.id == part_id)).one()
            locked = lock_message(poll, part.message_id)
            assert locked is not None
            assert record_status(poll, locked, locked.parts[0], 4, 1003, Source.POLL, utcnow())
        locked = lock_message(late, stale.message_id)
        fresh = locked.part(part_id) if locked else None
        assert locked is not None and fresh is not None
        assert fresh.state == "delivered" and fresh.status_code == 4
        assert not record_status(late, locked, fresh, 3, 1002, Source.WEBHOOK, utcnow())
        with pytest.raises(ValueError, match="not one of the locked rows"):  # the stale copy cannot be used
            record_status(late, locked, stale, 3, 1002, Source.WEBHOOK, utcnow())
    with transaction(postgres) as session:
        assert session.exec(select(Part.status_code).where(Part.id == part_id)).one() == 4
