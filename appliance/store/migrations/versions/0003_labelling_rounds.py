"""Create the labelling_rounds, round_items and seed_labels tables.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "labelling_rounds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("model_name", sa.String(length=100), nullable=False),
        sa.Column("model_sha256", sa.String(length=64), nullable=False),
        sa.Column("pool", sa.String(length=500), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("labelled_by", sa.String(length=100), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds_spent", sa.Float(), nullable=True),
        sa.Column("validation_accuracy", sa.Float(), nullable=True),
        sa.Column("trained_model_sha256", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_labelling_rounds"),
    )

    op.create_table(
        "round_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("seed_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=1000), nullable=True),
        sa.Column("top_crop_sha256", sa.String(length=64), nullable=False),
        sa.Column("bottom_crop_sha256", sa.String(length=64), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("suggested_class", sa.String(length=64), nullable=False),
        sa.Column("probabilities", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["labelling_rounds.id"],
            name="fk_round_items_round_id_labelling_rounds",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["seed_id"],
            ["seeds.id"],
            name="fk_round_items_seed_id_seeds",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_round_items"),
        sa.UniqueConstraint(
            "round_id", "position", name="uq_round_items_round_id_position"
        ),
    )
    op.create_index("ix_round_items_round_id", "round_items", ["round_id"])
    op.create_index("ix_round_items_seed_id", "round_items", ["seed_id"])

    op.create_table(
        "seed_labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_item_id", sa.Integer(), nullable=True),
        sa.Column("seed_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=1000), nullable=True),
        sa.Column("top_crop_sha256", sa.String(length=64), nullable=False),
        sa.Column("bottom_crop_sha256", sa.String(length=64), nullable=True),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("suggested_class", sa.String(length=64), nullable=True),
        sa.Column("labelled_by", sa.String(length=100), nullable=False),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["round_item_id"],
            ["round_items.id"],
            name="fk_seed_labels_round_item_id_round_items",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["seed_id"],
            ["seeds.id"],
            name="fk_seed_labels_seed_id_seeds",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_seed_labels"),
    )
    op.create_index("ix_seed_labels_round_item_id", "seed_labels", ["round_item_id"])
    op.create_index("ix_seed_labels_seed_id", "seed_labels", ["seed_id"])
    op.create_index(
        "ix_seed_labels_top_crop_sha256", "seed_labels", ["top_crop_sha256"]
    )


def downgrade() -> None:
    op.drop_index("ix_seed_labels_top_crop_sha256", table_name="seed_labels")
    op.drop_index("ix_seed_labels_seed_id", table_name="seed_labels")
    op.drop_index("ix_seed_labels_round_item_id", table_name="seed_labels")
    op.drop_table("seed_labels")
    op.drop_index("ix_round_items_seed_id", table_name="round_items")
    op.drop_index("ix_round_items_round_id", table_name="round_items")
    op.drop_table("round_items")
    op.drop_table("labelling_rounds")
