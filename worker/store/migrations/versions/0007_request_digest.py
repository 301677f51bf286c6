"""request_digest: what a message with an idempotency key asked for, so a reused key can be checked

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        # Null for rows written before it: those match any request with their key.
        batch_op.add_column(sa.Column("request_digest", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("request_digest")
