"""provider_message: texts received, and texts sent from the provider's own apps

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.String(), nullable=False),
        sa.Column("line_id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(), nullable=False),
        sa.Column("other", sa.String(), nullable=False),
        sa.Column("body", sa.String(), nullable=True),
        sa.Column("fingerprint", sa.String(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("message_status", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["line_id"], ["line.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider_id", name="uq_provider_message_provider_id"),
    )
    with op.batch_alter_table("provider_message", schema=None) as batch_op:
        batch_op.create_index("ix_provider_message_line_other", ["line_id", "other"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("provider_message", schema=None) as batch_op:
        batch_op.drop_index("ix_provider_message_line_other")
    op.drop_table("provider_message")
