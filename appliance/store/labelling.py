"""Labelling rounds: seeds chosen for an expert, and the labels the expert gave.

A round is one batch chosen by active learning: its items, in the order they were
chosen, with their acquisition scores, crops (image files named by SHA-256) and
the model's suggested class. Labels are rows of their own, never updated: a
relabelled seed gets a new row, the newest counting, so who labelled what and
when stays on record. The labels are training data for the classifier.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from appliance.store.db import Database
from appliance.store.models import Base, Seed, utc_now

log = logging.getLogger(__name__)

OPEN = "open"
SUBMITTED = "submitted"


class RoundNotFound(LookupError):
    """No labelling round with the requested id is stored."""

    def __init__(self, round_id: int) -> None:
        super().__init__(
            f"no labelling round with id {round_id} in the database; list the rounds "
            "with `seedqa-models active rounds`"
        )
        self.round_id = round_id


class LabellingRound(Base):
    """One batch of seeds chosen for labelling, and how its labelling went."""

    __tablename__ = "labelling_rounds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    strategy: Mapped[str] = mapped_column(String(32))
    model_name: Mapped[str] = mapped_column(String(100))
    model_sha256: Mapped[str] = mapped_column(String(64))
    pool: Mapped[str] = mapped_column(String(500))
    classes: Mapped[list[str]] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    labelled_by: Mapped[str | None] = mapped_column(String(100))
    submitted_at: Mapped[datetime | None] = mapped_column()
    seconds_spent: Mapped[float | None] = mapped_column(Float)
    validation_accuracy: Mapped[float | None] = mapped_column(Float)
    trained_model_sha256: Mapped[str | None] = mapped_column(String(64))

    items: Mapped[list[RoundItem]] = relationship(
        back_populates="round",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="RoundItem.position",
    )


class RoundItem(Base):
    """One chosen seed: a stored seed, or an image file for a folder pool."""

    __tablename__ = "round_items"
    __table_args__ = (UniqueConstraint("round_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(
        ForeignKey("labelling_rounds.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    seed_id: Mapped[int | None] = mapped_column(
        ForeignKey("seeds.id", ondelete="SET NULL"), index=True
    )
    source: Mapped[str | None] = mapped_column(String(1000))
    top_crop_sha256: Mapped[str] = mapped_column(String(64))
    bottom_crop_sha256: Mapped[str | None] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    suggested_class: Mapped[str] = mapped_column(String(64))
    probabilities: Mapped[list[float]] = mapped_column(JSON)

    round: Mapped[LabellingRound] = relationship(back_populates="items")
    seed: Mapped[Seed | None] = relationship()


class SeedLabel(Base):
    """A class given to a seed by a person; the newest row of an item counts."""

    __tablename__ = "seed_labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("round_items.id", ondelete="SET NULL"), index=True
    )
    seed_id: Mapped[int | None] = mapped_column(
        ForeignKey("seeds.id", ondelete="SET NULL"), index=True
    )
    source: Mapped[str | None] = mapped_column(String(1000))
    top_crop_sha256: Mapped[str] = mapped_column(String(64), index=True)
    bottom_crop_sha256: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(64))
    suggested_class: Mapped[str | None] = mapped_column(String(64))
    labelled_by: Mapped[str] = mapped_column(String(100))
    labelled_at: Mapped[datetime] = mapped_column(default=utc_now)


@dataclass(frozen=True)
class ItemInput:
    """A chosen item as handed to `create_round`."""

    top_crop_sha256: str
    bottom_crop_sha256: str | None
    score: float
    suggested_class: str
    probabilities: tuple[float, ...]
    seed_id: int | None = None
    source: str | None = None


@dataclass(frozen=True)
class ItemRecord:
    """A stored round item with its newest label (None while unlabelled)."""

    id: int
    position: int
    seed_id: int | None
    source: str | None
    top_crop_sha256: str
    bottom_crop_sha256: str | None
    score: float
    suggested_class: str
    probabilities: tuple[float, ...]
    label: str | None
    labelled_by: str | None


@dataclass(frozen=True)
class RoundRecord:
    """A stored labelling round and its items, in the order they were chosen."""

    id: int
    created_at: datetime
    strategy: str
    model_name: str
    model_sha256: str
    pool: str
    classes: tuple[str, ...]
    params: dict[str, Any]
    status: str
    labelled_by: str | None
    submitted_at: datetime | None
    seconds_spent: float | None
    validation_accuracy: float | None
    items: tuple[ItemRecord, ...]


@dataclass(frozen=True)
class LabelRecord:
    """One training example: a person's newest label of an item."""

    label: str
    top_crop_sha256: str
    bottom_crop_sha256: str | None
    labelled_by: str
    labelled_at: datetime
    seed_id: int | None
    source: str | None


def create_round(
    db: Database,
    *,
    strategy: str,
    model_name: str,
    model_sha256: str,
    pool: str,
    classes: Sequence[str],
    params: Mapping[str, Any],
    items: Sequence[ItemInput],
) -> int:
    """Store a new open round and its chosen items; return its id.

    Raises
    ------
    ValueError
        If there are no items or a suggested class is not one of `classes`.
    """
    if not items:
        raise ValueError("a labelling round needs at least one chosen item")
    unknown = {i.suggested_class for i in items} - set(classes)
    if unknown:
        raise ValueError(f"suggested classes {sorted(unknown)} not in {list(classes)}")
    with db.session() as session:
        row = LabellingRound(
            strategy=strategy,
            model_name=model_name,
            model_sha256=model_sha256,
            pool=pool[:500],
            classes=list(classes),
            params=dict(params),
            status=OPEN,
        )
        row.items = [
            RoundItem(
                position=position,
                seed_id=item.seed_id,
                source=item.source,
                top_crop_sha256=item.top_crop_sha256,
                bottom_crop_sha256=item.bottom_crop_sha256,
                score=float(item.score),
                suggested_class=item.suggested_class,
                probabilities=[float(p) for p in item.probabilities],
            )
            for position, item in enumerate(items)
        ]
        session.add(row)
        session.flush()
        round_id = row.id
    log.info(
        "labelling round %d stored: %d items by %s", round_id, len(items), strategy
    )
    return round_id


def get_round(db: Database, round_id: int) -> RoundRecord:
    """Return a stored round with its items and their newest labels."""
    with db.session() as session:
        row = session.get(LabellingRound, round_id)
        if row is None:
            raise RoundNotFound(round_id)
        newest = _newest_labels(session, [item.id for item in row.items])
        items = tuple(
            ItemRecord(
                id=item.id,
                position=item.position,
                seed_id=item.seed_id,
                source=item.source,
                top_crop_sha256=item.top_crop_sha256,
                bottom_crop_sha256=item.bottom_crop_sha256,
                score=item.score,
                suggested_class=item.suggested_class,
                probabilities=tuple(item.probabilities),
                label=newest[item.id].label if item.id in newest else None,
                labelled_by=newest[item.id].labelled_by if item.id in newest else None,
            )
            for item in row.items
        )
        return RoundRecord(
            id=row.id,
            created_at=row.created_at,
            strategy=row.strategy,
            model_name=row.model_name,
            model_sha256=row.model_sha256,
            pool=row.pool,
            classes=tuple(row.classes),
            params=dict(row.params),
            status=row.status,
            labelled_by=row.labelled_by,
            submitted_at=row.submitted_at,
            seconds_spent=row.seconds_spent,
            validation_accuracy=row.validation_accuracy,
            items=items,
        )


def _newest_labels(session: Any, item_ids: Sequence[int]) -> dict[int, SeedLabel]:
    rows = session.scalars(
        select(SeedLabel)
        .where(SeedLabel.round_item_id.in_(item_ids))
        .order_by(SeedLabel.id)
    )
    return {row.round_item_id: row for row in rows}


def list_rounds(db: Database) -> list[RoundRecord]:
    """Return every round, oldest first, without items."""
    with db.session() as session:
        ids = list(
            session.scalars(select(LabellingRound.id).order_by(LabellingRound.id))
        )
    return [_without_items(get_round(db, i)) for i in ids]


def _without_items(record: RoundRecord) -> RoundRecord:
    from dataclasses import replace

    return replace(record, items=())


def submit_labels(
    db: Database,
    round_id: int,
    labels: Mapping[int, str],
    *,
    labelled_by: str,
    seconds_spent: float,
) -> int:
    """Store an expert's labels of a round's items and mark the round submitted.

    Parameters
    ----------
    labels : dict of int to str
        Class name by item position; items left out stay unlabelled.
    labelled_by : str
        Who labelled them.
    seconds_spent : float
        Time spent on the batch; added to the round's total.

    Returns
    -------
    int
        Number of label rows written.

    Raises
    ------
    RoundNotFound
        If the round does not exist.
    ValueError
        If a label is not one of the round's classes, a position is not in the
        round, or `labelled_by` is empty.
    """
    if not labelled_by.strip():
        raise ValueError("say who labelled the seeds (labelled_by is empty)")
    with db.session() as session:
        row = session.get(LabellingRound, round_id)
        if row is None:
            raise RoundNotFound(round_id)
        by_position = {item.position: item for item in row.items}
        bad = [p for p in labels if p not in by_position]
        wrong = sorted({c for c in labels.values() if c not in row.classes})
        if bad or wrong:
            raise ValueError(
                f"round {round_id}: positions {bad} are not in the round and "
                f"classes {wrong} not among {row.classes}"
            )
        now = utc_now()
        for position, label in labels.items():
            item = by_position[position]
            session.add(
                SeedLabel(
                    round_item_id=item.id,
                    seed_id=item.seed_id,
                    source=item.source,
                    top_crop_sha256=item.top_crop_sha256,
                    bottom_crop_sha256=item.bottom_crop_sha256,
                    label=label,
                    suggested_class=item.suggested_class,
                    labelled_by=labelled_by,
                    labelled_at=now,
                )
            )
        row.status = SUBMITTED
        row.labelled_by = labelled_by
        row.submitted_at = now
        row.seconds_spent = (row.seconds_spent or 0.0) + float(seconds_spent)
    log.info(
        "round %d: %d labels by %s in %.0f s",
        round_id,
        len(labels),
        labelled_by,
        seconds_spent,
    )
    return len(labels)


def record_accuracy(
    db: Database, round_id: int, accuracy: float, *, model_sha256: str
) -> None:
    """Store the validation accuracy of the model retrained after a round."""
    with db.session() as session:
        row = session.get(LabellingRound, round_id)
        if row is None:
            raise RoundNotFound(round_id)
        row.validation_accuracy = float(accuracy)
        row.trained_model_sha256 = model_sha256


def training_labels(db: Database) -> list[LabelRecord]:
    """Return the newest label of every labelled crop, oldest first."""
    with db.session() as session:
        rows = list(session.scalars(select(SeedLabel).order_by(SeedLabel.id)))
    newest: dict[str, SeedLabel] = {row.top_crop_sha256: row for row in rows}
    return [
        LabelRecord(
            label=row.label,
            top_crop_sha256=row.top_crop_sha256,
            bottom_crop_sha256=row.bottom_crop_sha256,
            labelled_by=row.labelled_by,
            labelled_at=row.labelled_at,
            seed_id=row.seed_id,
            source=row.source,
        )
        for row in sorted(newest.values(), key=lambda r: r.id)
    ]


def labelled_seed_ids(db: Database) -> set[int]:
    """Return the ids of stored seeds that already have a label."""
    with db.session() as session:
        ids = session.scalars(
            select(SeedLabel.seed_id).where(SeedLabel.seed_id.is_not(None))
        )
        return {int(i) for i in ids if i is not None}


def chosen_sources(db: Database) -> set[str]:
    """Return the sources (file paths) and seed ids already in some round."""
    with db.session() as session:
        rows = session.execute(select(RoundItem.source, RoundItem.seed_id)).all()
    return {s for s, _ in rows if s} | {f"seed:{i}" for _, i in rows if i is not None}
