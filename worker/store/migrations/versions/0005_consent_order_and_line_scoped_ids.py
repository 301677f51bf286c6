"""consent keeps its order (opt_out rows stay when lifted, with the time of their latest change);
provider messages are unique per line, not across lines

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("opt_out", schema=None) as batch_op:
        batch_op.add_column(sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE opt_out SET changed_at = created_at")
    with op.batch_alter_table("opt_out", schema=None) as batch_op:
        batch_op.alter_column("changed_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    with op.batch_alter_table("provider_message", schema=None) as batch_op:
        batch_op.drop_constraint("uq_provider_message_provider_id", type_="unique")
        batch_op.create_unique_constraint("uq_provider_message_line_provider_id", ["line_id", "provider_id"])


def downgrade() -> None:
    with op.batch_alter_table("provider_message", schema=None) as batch_op:
        batch_op.drop_constraint("uq_provider_message_line_provider_id", type_="unique")
        batch_op.create_unique_constraint("uq_provider_message_provider_id", ["provider_id"])
    op.execute("DELETE FROM opt_out WHERE lifted_at IS NOT NULL")
    with op.batch_alter_table("opt_out", schema=None) as batch_op:
        batch_op.drop_column("lifted_at")
        batch_op.drop_column("changed_at")
