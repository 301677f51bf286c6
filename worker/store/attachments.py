"""The files of MMS parts: read whole when a part is sent, described (never read) for a report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlmodel import Session, col, select

from worker.store.models import Attachment


class FileFacts(NamedTuple):
    """What a report says of a file: its name, type, size and whether the text's body became it."""

    filename: str
    content_type: str
    size: int
    from_body: bool


def files_to_send(session: Session, part_ids: Sequence[int]) -> dict[int, list[Attachment]]:
    """The files of these parts, in their order, by part (one query for a batch of claims)."""
    files: dict[int, list[Attachment]] = {}
    if not part_ids:
        return files
    rows = session.exec(
        select(Attachment).where(col(Attachment.part_id).in_(part_ids)).order_by(col(Attachment.position))
    )
    for attachment in rows:
        files.setdefault(attachment.part_id, []).append(attachment)
    return files


def file_facts(session: Session, part_id: int) -> list[FileFacts]:
    """What a report shows of a part's files, without loading their bytes."""
    rows = session.exec(
        select(Attachment.filename, Attachment.content_type, Attachment.size, Attachment.from_body)
        .where(Attachment.part_id == part_id)
        .order_by(col(Attachment.position))
    ).all()
    return [FileFacts(*row) for row in rows]
