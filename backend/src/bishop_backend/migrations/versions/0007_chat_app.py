"""what the chat app shows: an avatar's portrait, a version's note, a chat export's senders,
and a chat's messages in order

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_message_chat_id_created_at", "message", ["chat_id", "created_at"])
    with op.batch_alter_table("avatar", schema=None) as batch_op:
        batch_op.add_column(sa.Column("portrait_key", sa.String(length=1024), nullable=True))
    with op.batch_alter_table("adapterversion", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("note", sa.String(length=500), nullable=False, server_default="")
        )
    # A chat export's senders as the ingest found them, and the one the user chose as the person.
    with op.batch_alter_table("material", schema=None) as batch_op:
        batch_op.add_column(sa.Column("senders", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("sender", sa.String(length=255), nullable=True))


def downgrade() -> None:
    op.drop_index("ix_message_chat_id_created_at", table_name="message")
    with op.batch_alter_table("material", schema=None) as batch_op:
        batch_op.drop_column("sender")
        batch_op.drop_column("senders")
    with op.batch_alter_table("adapterversion", schema=None) as batch_op:
        batch_op.drop_column("note")
    with op.batch_alter_table("avatar", schema=None) as batch_op:
        batch_op.drop_column("portrait_key")
