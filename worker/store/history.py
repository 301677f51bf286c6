"""A long history, written fast: for `outbox bench --history N` (what a line looks like after a year of
texting), never for real messages. Two set-based statements, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy import Connection, text

# A recursive count works on both databases (SQLite has no generate_series of its own).
_MESSAGES = text(
    """
    WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < :count)
    INSERT INTO message (line_id, recipient, state, priority, created_at, updated_at, final_at)
    SELECT :line_id, '+1208' || (2000000 + x % 7000000), 'delivered', 1, :at, :at, :at FROM n
    """
)
_PARTS = text(
    """
    INSERT INTO part (message_id, line_id, position, kind, body, body_bytes, payload_bytes, state,
                      priority, attempts, releases, poll_count, provider_id, status_code, sent_at, final_at)
    SELECT id, line_id, 0, 'sms', 'history', 7, 7, 'delivered', 1, 1, 1, 1, '9' || id, 4, created_at, final_at
    FROM message WHERE line_id = :line_id AND id > :after
    """
)


def prefill_delivered(connection: Connection, line_id: int, count: int, at: object) -> None:
    """`count` delivered texts (a part each) on the line, as of `at`; refreshes the planner's statistics."""
    after = connection.execute(text("SELECT COALESCE(MAX(id), 0) FROM message")).scalar_one()
    connection.execute(_MESSAGES, {"count": count, "line_id": line_id, "at": at})
    connection.execute(_PARTS, {"line_id": line_id, "after": after})
    connection.execute(text("ANALYZE"))
