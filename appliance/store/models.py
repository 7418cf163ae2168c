"""Typed SQLAlchemy models of the inspection database.

A rig owns calibrations and samples; a sample owns one capture per view, one row
per physical seed and its amendments. Users hold the accounts, and `audit_log` the
append-only, hash-chained record of who did what. The Alembic migrations in
`migrations/versions` create exactly these tables; a test checks that the two agree.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

#: Constraint names are fixed so that migrations (and SQLite batch rebuilds) can name
#: them; the initial migration spells out the same names.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

VIEW_NAMES: tuple[str, str] = ("top", "bottom")


def utc_now() -> datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no time zone type and returns naive datetimes; this type refuses naive
    values on the way in (their zone is unknown), stores UTC, and hands back aware UTC
    datetimes on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        """Convert an aware datetime to UTC; refuse a naive one."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"got the naive datetime {value.isoformat()}; pass a timezone-aware "
                "datetime, e.g. datetime.now(UTC)"
            )
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        """Return the stored value as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base carrying the shared metadata and naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Rig(Base):
    """A bench rig: a named pair of top and bottom cameras.

    The serials are those last seen; each capture keeps the serial it was taken with.
    """

    __tablename__ = "rigs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    top_serial: Mapped[str | None] = mapped_column(String(100))
    bottom_serial: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    calibrations: Mapped[list[Calibration]] = relationship(back_populates="rig")
    samples: Mapped[list[Sample]] = relationship(back_populates="rig")


class Calibration(Base):
    """One calibration of a rig; `version` counts 1, 2, ... per rig."""

    __tablename__ = "calibrations"
    __table_args__ = (UniqueConstraint("rig_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rig_id: Mapped[int] = mapped_column(ForeignKey("rigs.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    residual_px: Mapped[float] = mapped_column(Float)
    mm_per_px_top: Mapped[float] = mapped_column(Float)
    mm_per_px_bottom: Mapped[float] = mapped_column(Float)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    record_sha256: Mapped[str] = mapped_column(String(64))

    rig: Mapped[Rig] = relationship(back_populates="calibrations")


class Sample(Base):
    """One captured sample: a lot, a sample code and the recipe it was judged by.

    A sample code may be captured again (a recapture is a new row), so `(lot, code)`
    is indexed but not unique.
    """

    __tablename__ = "samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rig_id: Mapped[int] = mapped_column(ForeignKey("rigs.id"), index=True)
    calibration_id: Mapped[int | None] = mapped_column(
        ForeignKey("calibrations.id"), index=True
    )
    lot: Mapped[str] = mapped_column(String(100), index=True)
    code: Mapped[str] = mapped_column(String(100), index=True)
    recipe: Mapped[str] = mapped_column(String(100))
    operator: Mapped[str] = mapped_column(String(100))
    captured_at: Mapped[datetime] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(32))
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    rig: Mapped[Rig] = relationship(back_populates="samples")
    calibration: Mapped[Calibration | None] = relationship()
    captures: Mapped[list[Capture]] = relationship(
        back_populates="sample",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Capture.id",
    )
    seeds: Mapped[list[Seed]] = relationship(
        back_populates="sample",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Seed.index",
    )


class Capture(Base):
    """The image of one view of a sample, named by the SHA-256 of its PNG file."""

    __tablename__ = "captures"
    __table_args__ = (
        UniqueConstraint("sample_id", "view"),
        CheckConstraint("view IN ('top', 'bottom')", name="view"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    view: Mapped[str] = mapped_column(String(8))
    camera_serial: Mapped[str] = mapped_column(String(100))
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[datetime] = mapped_column()
    exposure_us: Mapped[float] = mapped_column(Float)

    sample: Mapped[Sample] = relationship(back_populates="captures")


class Seed(Base):
    """One physical seed of a sample: its label in each view and the fused verdict.

    `top_label` and `bottom_label` are the seed's values in that view's label image
    (None where the seed was not seen in that view); boxes are `[x, y, w, h]` in
    pixels; `data` holds per-view class probabilities.
    """

    __tablename__ = "seeds"
    __table_args__ = (UniqueConstraint("sample_id", "index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    top_label: Mapped[int | None] = mapped_column(Integer)
    bottom_label: Mapped[int | None] = mapped_column(Integer)
    top_bbox: Mapped[list[int] | None] = mapped_column(JSON)
    bottom_bbox: Mapped[list[int] | None] = mapped_column(JSON)
    area_mm2: Mapped[float | None] = mapped_column(Float)
    fused_class: Mapped[str | None] = mapped_column(String(64))
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    sample: Mapped[Sample] = relationship(back_populates="seeds")


class User(Base):
    """A local account: a name, one role, and a scrypt hash of the PIN.

    `pin_hash` is ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>``; the PIN itself is
    never stored.
    """

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('operator', 'qa_lead', 'engineer')", name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    pin_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Amendment(Base):
    """A QA lead's change of one seed's class, with the reason.

    `version` is the report version the amendment produced: the measured report is
    version 1, the first amendment makes version 2, and so on.
    """

    __tablename__ = "amendments"
    __table_args__ = (UniqueConstraint("sample_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    seed_index: Mapped[int] = mapped_column(Integer)
    old_class: Mapped[str | None] = mapped_column(String(64))
    new_class: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    amended_at: Mapped[datetime] = mapped_column()

    user: Mapped[User] = relationship()


class AuditEntry(Base):
    """One row of the append-only audit trail.

    Each row's `row_hash` is the SHA-256 of the previous row's hash and this row's
    fields (see `appliance.records.audit`); the database refuses UPDATE and DELETE
    on this table. `recorded_at` is ISO 8601 text and `details` canonical JSON text,
    so that the hashed bytes are exactly the stored bytes.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recorded_at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(100), index=True)
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    row_hash: Mapped[str] = mapped_column(String(64), unique=True)
