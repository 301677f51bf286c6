"""indexes for the release job (oldest due parts, queue depth) and the poll's paging budget

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("part", schema=None) as batch_op:
        # A line's oldest due parts in order, straight from the index (the release job reads a few).
        batch_op.drop_index("ix_part_line_state_due")
        batch_op.create_index("ix_part_line_state_due", ["line_id", "state", "due_at", "id"], unique=False)
        # Released parts not yet claimed: the send queue's depth, counted every second.
        batch_op.create_index("ix_part_dispatched", ["dispatched_at"], unique=False)
        # A line's texts sent since a time: how deep a poll must page, whatever the history.
        batch_op.create_index("ix_part_line_sent", ["line_id", "sent_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("part", schema=None) as batch_op:
        batch_op.drop_index("ix_part_line_sent")
        batch_op.drop_index("ix_part_dispatched")
        batch_op.drop_index("ix_part_line_state_due")
        batch_op.create_index("ix_part_line_state_due", ["line_id", "state", "due_at"], unique=False)
