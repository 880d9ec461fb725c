"""an index of references between resources

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "references",
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.PrimaryKeyConstraint("uid", "kind", "name"),
    )
    with op.batch_alter_table("references", schema=None) as batch_op:
        batch_op.create_index("ix_references_target", ["project", "kind", "name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("references", schema=None) as batch_op:
        batch_op.drop_index("ix_references_target")
    op.drop_table("references")
