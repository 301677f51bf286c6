"""priorities (a line's queue order), the worker holding a claim, and an index of messages in flight
for the one-recipient order check (its cost follows what is in flight, not the history)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

IN_FLIGHT = "state IN ('queued', 'sending', 'retrying', 'unknown')"


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="1"))
        batch_op.drop_index("ix_message_line_recipient")
        batch_op.drop_index("ix_message_state")
        batch_op.create_index(
            "ix_message_in_flight",
            ["line_id", "recipient", "id"],
            unique=False,
            postgresql_where=sa.text(IN_FLIGHT),
            sqlite_where=sa.text(IN_FLIGHT),
        )
    with op.batch_alter_table("part", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("claimed_by", sa.String(), nullable=True))
        batch_op.drop_index("ix_part_line_state_due")
        batch_op.create_index(
            "ix_part_line_state_due", ["line_id", "state", "priority", "due_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("part", schema=None) as batch_op:
        batch_op.drop_index("ix_part_line_state_due")
        batch_op.create_index("ix_part_line_state_due", ["line_id", "state", "due_at", "id"], unique=False)
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("priority")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_in_flight")
        batch_op.create_index("ix_message_state", ["state"], unique=False)
        batch_op.create_index("ix_message_line_recipient", ["line_id", "recipient", "id"], unique=False)
        batch_op.drop_column("priority")
