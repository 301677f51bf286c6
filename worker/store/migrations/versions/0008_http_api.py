"""The HTTP API: api_key (hashed keys, optional line scope, callback signing secret), a message's
status callback, and callback_delivery (one row per state change to tell a callback URL about)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("key_hash", sa.String(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=True),
        sa.Column("signing_secret", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_api_key_key_hash", "api_key", ["key_hash"], unique=True)
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("api_key_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("callback_url", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("callback_events", sa.String(), nullable=True))
    op.create_table(
        "callback_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("gave_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["message.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_callback_delivery_message_id", "callback_delivery", ["message_id"])
    op.create_index("ix_callback_delivery_pending", "callback_delivery", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_callback_delivery_pending", table_name="callback_delivery")
    op.drop_index("ix_callback_delivery_message_id", table_name="callback_delivery")
    op.drop_table("callback_delivery")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("callback_events")
        batch_op.drop_column("callback_url")
        batch_op.drop_column("api_key_id")
    op.drop_index("ix_api_key_key_hash", table_name="api_key")
    op.drop_table("api_key")
