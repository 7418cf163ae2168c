"""Amending a stored sample: a seed's class changed by a QA lead, with a reason.

The measured verdict is never overwritten: each seed row keeps the report it was
measured with in `data`, and each amendment row keeps the class before and after.
The seed's `fused_class` column and the sample's purity figures are updated to the
amended state, and the report's version goes up by one per amendment.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from appliance import recipes
from appliance.purity import summarise
from appliance.store import SampleNotFound
from appliance.store.models import Amendment, Sample

log = logging.getLogger(__name__)

REASON_MIN_LENGTH = 3
REASON_MAX_LENGTH = 500


class AmendmentError(ValueError):
    """A sample cannot be amended as asked."""


@dataclass(frozen=True)
class AmendmentRecord:
    """One amendment, as shown in a report's history.

    Attributes
    ----------
    version : int
        The report version this amendment made (2 for the first).
    seed_index : int
        The seed's number on the overlays.
    old_class, new_class : str
        Its class before and after.
    reason : str
        Why, in the QA lead's words.
    user : str
        The QA lead's account name.
    amended_at : datetime
        When (UTC).
    """

    version: int
    seed_index: int
    old_class: str | None
    new_class: str
    reason: str
    user: str
    amended_at: datetime

    def to_json(self) -> dict[str, Any]:
        """Return the amendment as the report's ``amendments[]`` entry."""
        return {
            "version": self.version,
            "seed": self.seed_index,
            "from": self.old_class,
            "to": self.new_class,
            "reason": self.reason,
            "by": self.user,
            "at": self.amended_at.isoformat(),
        }


def normalise_reason(text: str) -> str:
    """Return an amendment reason, NFKC-normalised and with spaces collapsed.

    Raises
    ------
    AmendmentError
        If it is shorter than `REASON_MIN_LENGTH` or longer than
        `REASON_MAX_LENGTH` characters, or holds control characters.
    """
    value = " ".join(unicodedata.normalize("NFKC", str(text)).split())
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise AmendmentError("the reason holds control characters; type plain text")
    if not REASON_MIN_LENGTH <= len(value) <= REASON_MAX_LENGTH:
        raise AmendmentError(
            f"the reason has {len(value)} characters; say why in {REASON_MIN_LENGTH} "
            f"to {REASON_MAX_LENGTH}"
        )
    return value


def list_amendments(session: Session, sample_id: int) -> list[AmendmentRecord]:
    """Return a sample's amendments, oldest first."""
    rows = session.scalars(
        select(Amendment)
        .where(Amendment.sample_id == sample_id)
        .options(selectinload(Amendment.user))
        .order_by(Amendment.version)
    )
    return [
        AmendmentRecord(
            a.version,
            a.seed_index,
            a.old_class,
            a.new_class,
            a.reason,
            a.user.name,
            a.amended_at,
        )
        for a in rows
    ]


def amend_seed_class(
    session: Session,
    *,
    sample_id: int,
    seed_index: int,
    new_class: str,
    reason: str,
    user_id: int,
) -> AmendmentRecord:
    """Change one seed's class, recompute the sample's figures, record the change.

    Parameters
    ----------
    session : Session
        The transaction; the amendment, the seed, the figures and the caller's
        audit row commit together.
    sample_id : int
        The stored sample.
    seed_index : int
        The seed's number in the report (and on the overlays).
    new_class : str
        One of the classes of the model that classified the sample.
    reason : str
        Why; see `normalise_reason`.
    user_id : int
        The QA lead's account id.

    Returns
    -------
    AmendmentRecord
        The new amendment; its `version` is the report's new version.

    Raises
    ------
    SampleNotFound
        If there is no such sample.
    AmendmentError
        If the seed, the class or the reason is not acceptable, or the sample was
        never classified.
    """
    reason = normalise_reason(reason)
    sample = session.get(Sample, sample_id, options=[selectinload(Sample.seeds)])
    if sample is None:
        raise SampleNotFound(sample_id)
    head = dict(sample.summary or {})
    model = (head.get("sample") or {}).get("model")
    if not model:
        raise AmendmentError(
            f"sample {sample_id} was not classified, so it has no classes to amend"
        )
    classes = list(model["classes"])
    if new_class not in classes:
        raise AmendmentError(
            f"{new_class!r} is not a class of sample {sample_id}'s model; use one of "
            f"{', '.join(classes)}"
        )
    seed = next((s for s in sample.seeds if s.index == seed_index), None)
    if seed is None:
        indices = [s.index for s in sample.seeds]
        raise AmendmentError(
            f"sample {sample_id} has no seed {seed_index}; its seeds are numbered "
            f"{min(indices, default=0)} to {max(indices, default=0)}"
        )
    if seed.fused_class == new_class:
        raise AmendmentError(
            f"seed {seed_index} of sample {sample_id} is already {new_class!r}"
        )

    last = session.scalar(
        select(func.max(Amendment.version)).where(Amendment.sample_id == sample_id)
    )
    version = 2 if last is None else last + 1
    amendment = Amendment(
        sample_id=sample_id,
        version=version,
        seed_index=seed_index,
        old_class=seed.fused_class,
        new_class=new_class,
        reason=reason,
        user_id=user_id,
        amended_at=datetime.now(UTC),
    )
    session.add(amendment)
    seed.fused_class = new_class

    head["summary"] = _recomputed_summary(sample, head)
    head["report"] = {"version": version, "status": "amended"}
    sample.summary = head
    session.flush()
    log.info(
        "sample %d seed %d amended from %s to %s (report version %d)",
        sample_id,
        seed_index,
        amendment.old_class,
        new_class,
        version,
    )
    return list_amendments(session, sample_id)[-1]


def _recomputed_summary(sample: Sample, head: dict[str, Any]) -> dict[str, Any]:
    meta = head["sample"]
    model = meta["model"]
    mass = meta.get("mass_model")
    if mass is None:
        recipe = recipes.get(sample.recipe)
        mass = {"mg_per_mm2": recipe.mass_mg_per_mm2, "exponent": recipe.mass_exponent}
    seeds = sorted(sample.seeds, key=lambda s: s.index)
    purity = summarise(
        [s.fused_class for s in seeds],
        [s.area_mm2 or 0.0 for s in seeds],
        classes=model["classes"],
        pure_classes=model["pure_classes"],
        confusion=model.get("confusion"),
        mass_mg_per_mm2=float(mass["mg_per_mm2"]),
        mass_exponent=float(mass["exponent"]),
    )
    return {**dict(head.get("summary") or {}), **purity.to_json()}
