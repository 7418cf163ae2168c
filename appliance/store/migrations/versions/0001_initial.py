"""Create the rigs, calibrations, samples, captures and seeds tables.

Revision ID: 0001
Revises:
Create Date: 2024-12-03 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rigs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("top_serial", sa.String(length=100), nullable=True),
        sa.Column("bottom_serial", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rigs"),
        sa.UniqueConstraint("name", name="uq_rigs_name"),
    )

    op.create_table(
        "calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rig_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("residual_px", sa.Float(), nullable=False),
        sa.Column("mm_per_px_top", sa.Float(), nullable=False),
        sa.Column("mm_per_px_bottom", sa.Float(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("record_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["rig_id"], ["rigs.id"], name="fk_calibrations_rig_id_rigs"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_calibrations"),
        sa.UniqueConstraint("rig_id", "version", name="uq_calibrations_rig_id_version"),
    )
    op.create_index("ix_calibrations_rig_id", "calibrations", ["rig_id"])

    op.create_table(
        "samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rig_id", sa.Integer(), nullable=False),
        sa.Column("calibration_id", sa.Integer(), nullable=True),
        sa.Column("lot", sa.String(length=100), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("recipe", sa.String(length=100), nullable=False),
        sa.Column("operator", sa.String(length=100), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["calibration_id"],
            ["calibrations.id"],
            name="fk_samples_calibration_id_calibrations",
        ),
        sa.ForeignKeyConstraint(["rig_id"], ["rigs.id"], name="fk_samples_rig_id_rigs"),
        sa.PrimaryKeyConstraint("id", name="pk_samples"),
    )
    op.create_index("ix_samples_rig_id", "samples", ["rig_id"])
    op.create_index("ix_samples_calibration_id", "samples", ["calibration_id"])
    op.create_index("ix_samples_lot", "samples", ["lot"])
    op.create_index("ix_samples_code", "samples", ["code"])
    op.create_index("ix_samples_captured_at", "samples", ["captured_at"])

    op.create_table(
        "captures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.Integer(), nullable=False),
        sa.Column("view", sa.String(length=8), nullable=False),
        sa.Column("camera_serial", sa.String(length=100), nullable=False),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exposure_us", sa.Float(), nullable=False),
        sa.CheckConstraint("view IN ('top', 'bottom')", name="ck_captures_view"),
        sa.ForeignKeyConstraint(
            ["sample_id"],
            ["samples.id"],
            name="fk_captures_sample_id_samples",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_captures"),
        sa.UniqueConstraint("sample_id", "view", name="uq_captures_sample_id_view"),
    )
    op.create_index("ix_captures_image_sha256", "captures", ["image_sha256"])

    op.create_table(
        "seeds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("top_label", sa.Integer(), nullable=True),
        sa.Column("bottom_label", sa.Integer(), nullable=True),
        sa.Column("top_bbox", sa.JSON(), nullable=True),
        sa.Column("bottom_bbox", sa.JSON(), nullable=True),
        sa.Column("area_mm2", sa.Float(), nullable=True),
        sa.Column("fused_class", sa.String(length=64), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["sample_id"],
            ["samples.id"],
            name="fk_seeds_sample_id_samples",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_seeds"),
        sa.UniqueConstraint("sample_id", "index", name="uq_seeds_sample_id_index"),
    )


def downgrade() -> None:
    op.drop_table("seeds")
    op.drop_index("ix_captures_image_sha256", table_name="captures")
    op.drop_table("captures")
    op.drop_index("ix_samples_captured_at", table_name="samples")
    op.drop_index("ix_samples_code", table_name="samples")
    op.drop_index("ix_samples_lot", table_name="samples")
    op.drop_index("ix_samples_calibration_id", table_name="samples")
    op.drop_index("ix_samples_rig_id", table_name="samples")
    op.drop_table("samples")
    op.drop_index("ix_calibrations_rig_id", table_name="calibrations")
    op.drop_table("calibrations")
    op.drop_table("rigs")
