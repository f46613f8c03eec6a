"""feedback codes, review events, replies and protection alerts

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing items get defaults (not repeated, not urgent, not sensitive).
    op.create_table(
        "feedback_corrections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["feedback_items.id"],
            name=op.f("fk_feedback_corrections_item_id_feedback_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["staff_members.id"],
            name=op.f("fk_feedback_corrections_staff_id_staff_members"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_corrections")),
    )
    with op.batch_alter_table("feedback_corrections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_feedback_corrections_item_id"), ["item_id"], unique=False
        )

    op.create_table(
        "feedback_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["feedback_items.id"],
            name=op.f("fk_feedback_events_item_id_feedback_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["staff_members.id"],
            name=op.f("fk_feedback_events_staff_id_staff_members"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_events")),
    )
    with op.batch_alter_table("feedback_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_events_item_id"), ["item_id"], unique=False)

    op.create_table(
        "feedback_item_codes",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("scheme", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=32), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["feedback_items.id"],
            name=op.f("fk_feedback_item_codes_item_id_feedback_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("item_id", "scheme", "value", name=op.f("pk_feedback_item_codes")),
    )
    with op.batch_alter_table("feedback_item_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_item_codes_value"), ["value"], unique=False)

    op.create_table(
        "feedback_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["feedback_items.id"],
            name=op.f("fk_feedback_replies_item_id_feedback_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["staff_members.id"],
            name=op.f("fk_feedback_replies_staff_id_staff_members"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_replies")),
    )
    with op.batch_alter_table("feedback_replies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_replies_item_id"), ["item_id"], unique=False)

    op.create_table(
        "protection_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["acknowledged_by"],
            ["staff_members.id"],
            name=op.f("fk_protection_alerts_acknowledged_by_staff_members"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["feedback_items.id"],
            name=op.f("fk_protection_alerts_item_id_feedback_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_protection_alerts")),
    )
    with op.batch_alter_table("protection_alerts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_protection_alerts_acknowledged_at"), ["acknowledged_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_protection_alerts_item_id"), ["item_id"], unique=False)

    with op.batch_alter_table("feedback_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_message_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("needs", sa.String(length=160), nullable=True))
        batch_op.add_column(sa.Column("repeats", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("last_received_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("type", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("urgent", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("sensitive", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("sensitive_categories", sa.String(length=160), nullable=True))
        batch_op.add_column(sa.Column("suggested", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("contact_wanted", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("in_review_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("referred_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_feedback_items_sensitive"), ["sensitive"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_feedback_items_type"), ["type"], unique=False)

    # ### end Alembic commands ###


def downgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table("feedback_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_items_type"))
        batch_op.drop_index(batch_op.f("ix_feedback_items_sensitive"))
        batch_op.drop_column("closed_at")
        batch_op.drop_column("answered_at")
        batch_op.drop_column("referred_at")
        batch_op.drop_column("in_review_at")
        batch_op.drop_column("contact_wanted")
        batch_op.drop_column("suggested")
        batch_op.drop_column("sensitive_categories")
        batch_op.drop_column("sensitive")
        batch_op.drop_column("urgent")
        batch_op.drop_column("type")
        batch_op.drop_column("last_received_at")
        batch_op.drop_column("repeats")
        batch_op.drop_column("needs")
        batch_op.drop_column("source_message_id")

    with op.batch_alter_table("protection_alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_protection_alerts_item_id"))
        batch_op.drop_index(batch_op.f("ix_protection_alerts_acknowledged_at"))

    op.drop_table("protection_alerts")
    with op.batch_alter_table("feedback_replies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_replies_item_id"))

    op.drop_table("feedback_replies")
    with op.batch_alter_table("feedback_item_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_item_codes_value"))

    op.drop_table("feedback_item_codes")
    with op.batch_alter_table("feedback_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_events_item_id"))

    op.drop_table("feedback_events")
    with op.batch_alter_table("feedback_corrections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_corrections_item_id"))

    op.drop_table("feedback_corrections")
    # ### end Alembic commands ###
