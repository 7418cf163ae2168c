"""The append-only audit trail: one row per action, chained by SHA-256.

Each row's hash covers the previous row's hash and every field of the row, so
changing, removing or inserting a row breaks the chain from there on; the database
also refuses UPDATE and DELETE on the table (migration 0002). Captures and
amendments record the SHA-256 of the sample's stored content, so a result edited
behind the appliance's back no longer matches its last audited state.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from appliance.store.db import Database
from appliance.store.models import Amendment, AuditEntry, Calibration, Sample

log = logging.getLogger(__name__)

#: The `prev_hash` of the first row.
GENESIS_HASH = "0" * 64

#: Actions whose rows record a sample's content hash under ``content_sha256``.
CONTENT_ACTIONS = ("capture", "amend")


def canonical_json(value: Any) -> str:
    """Return `value` as JSON with sorted keys and no spaces: the hashed form."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def sha256_text(text: str) -> str:
    """Return the hex SHA-256 of `text` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    """One row of the audit trail, as read back."""

    id: int
    recorded_at: str
    actor: str
    role: str
    action: str
    outcome: str
    subject: str
    details: dict[str, Any]
    row_hash: str


def row_hash(
    prev_hash: str,
    *,
    recorded_at: str,
    actor: str,
    role: str,
    action: str,
    outcome: str,
    subject: str,
    details: str,
) -> str:
    """Return the hash of one audit row given the hash of the row before it."""
    fields = [prev_hash, recorded_at, actor, role, action, outcome, subject, details]
    return sha256_text(canonical_json(fields))


def append_entry(
    session: Session,
    *,
    actor: str,
    role: str,
    action: str,
    outcome: str = "ok",
    subject: str = "",
    details: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """Add one row to the audit trail in `session`'s transaction.

    Parameters
    ----------
    session : Session
        The transaction the row belongs to: it commits or rolls back with the work
        it records.
    actor, role : str
        Who acted, and in which role.
    action : str
        What was done or attempted, e.g. ``"capture"``, ``"amend"``, ``"login"``.
    outcome : {"ok", "refused", "failed"}
        Whether it happened.
    subject : str
        What it was done to, e.g. ``"sample:12"``; empty for none.
    details : dict, optional
        Anything else worth keeping, JSON-serialisable.

    Returns
    -------
    AuditRecord
        The new row.
    """
    last = session.scalars(
        select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)
    ).one_or_none()
    prev = GENESIS_HASH if last is None else last.row_hash
    fields = {
        "recorded_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "role": role,
        "action": action,
        "outcome": outcome,
        "subject": subject,
        "details": canonical_json(dict(details or {})),
    }
    # A second writer racing for the same predecessor fails on the unique
    # prev_hash, so the chain can never fork.
    entry = AuditEntry(prev_hash=prev, row_hash=row_hash(prev, **fields), **fields)
    session.add(entry)
    session.flush()
    log.debug("audit row %d: %s %s %s by %s", entry.id, action, outcome, subject, actor)
    return _record(entry)


def _record(entry: AuditEntry) -> AuditRecord:
    return AuditRecord(
        id=entry.id,
        recorded_at=entry.recorded_at,
        actor=entry.actor,
        role=entry.role,
        action=entry.action,
        outcome=entry.outcome,
        subject=entry.subject,
        details=json.loads(entry.details),
        row_hash=entry.row_hash,
    )


def list_entries(
    db: Database, *, subject: str | None = None, limit: int | None = None
) -> list[AuditRecord]:
    """Return audit rows, oldest first, optionally only those about `subject`."""
    query = select(AuditEntry).order_by(AuditEntry.id)
    if subject is not None:
        query = query.where(AuditEntry.subject == subject)
    with db.session() as session:
        rows = [_record(e) for e in session.scalars(query)]
    return rows if limit is None else rows[-limit:]


def audit_head(session: Session) -> tuple[int, str] | None:
    """Return the id and hash of the newest audit row, or None for an empty trail."""
    last = session.scalars(
        select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)
    ).one_or_none()
    return None if last is None else (last.id, last.row_hash)


def sample_content(session: Session, sample_id: int) -> dict[str, Any]:
    """Return everything stored about a sample, as plain data, for hashing.

    The sample row, its captures, its seeds and its amendments are read back from
    the database, so the hash covers what is stored, not what was meant to be.

    Raises
    ------
    LookupError
        If there is no sample `sample_id`.
    """
    sample = session.get(
        Sample,
        sample_id,
        options=[selectinload(Sample.captures), selectinload(Sample.seeds)],
        populate_existing=True,
    )
    if sample is None:
        raise LookupError(f"no sample with id {sample_id}")
    amendments = session.scalars(
        select(Amendment)
        .where(Amendment.sample_id == sample_id)
        .order_by(Amendment.version)
    )
    return {
        "id": sample.id,
        "rig_id": sample.rig_id,
        "calibration_id": sample.calibration_id,
        "lot": sample.lot,
        "code": sample.code,
        "recipe": sample.recipe,
        "operator": sample.operator,
        "captured_at": _iso(sample.captured_at),
        "status": sample.status,
        "summary": sample.summary,
        "captures": [
            [
                c.view,
                c.camera_serial,
                c.image_sha256,
                c.width,
                c.height,
                _iso(c.timestamp),
                c.exposure_us,
            ]
            for c in sorted(sample.captures, key=lambda c: c.view)
        ],
        "seeds": [
            [
                s.index,
                s.top_label,
                s.bottom_label,
                s.top_bbox,
                s.bottom_bbox,
                s.area_mm2,
                s.fused_class,
                s.flags,
                s.data,
            ]
            for s in sorted(sample.seeds, key=lambda s: s.index)
        ],
        "amendments": [
            [
                a.version,
                a.seed_index,
                a.old_class,
                a.new_class,
                a.reason,
                a.user_id,
                _iso(a.amended_at),
            ]
            for a in amendments
        ],
    }


def sample_content_sha256(session: Session, sample_id: int) -> str:
    """Return the SHA-256 of `sample_content` in canonical JSON."""
    session.flush()
    return sha256_text(canonical_json(sample_content(session, sample_id)))


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class AuditProblem:
    """One thing in the database that does not fit the audit trail.

    Attributes
    ----------
    row : int or None
        The audit row that does not fit, or None when the problem is a stored
        record the trail does not vouch for.
    what : str
        What is wrong, in words.
    """

    row: int | None
    what: str


@dataclass(frozen=True)
class AuditReport:
    """The outcome of `verify_audit`.

    Attributes
    ----------
    rows : int
        Audit rows read.
    samples : int
        Samples whose stored content was checked.
    head : tuple of (int, str) or None
        Id and hash of the last row, the value to compare with a signed export's
        manifest.
    problems : tuple of AuditProblem
        In the order found: the chain first, row by row, then the samples.
    """

    rows: int
    samples: int
    head: tuple[int, str] | None
    problems: tuple[AuditProblem, ...]

    @property
    def ok(self) -> bool:
        """Whether the trail is whole and every sample matches it."""
        return not self.problems


def verify_audit(
    db: Database, *, anchors: Sequence[tuple[int, str]] = ()
) -> AuditReport:
    """Check the chain of the audit trail, then every sample and calibration.

    Parameters
    ----------
    db : Database
        The open database.
    anchors : sequence of (int, str)
        Audit heads recorded elsewhere, e.g. in signed export manifests: each row
        must still exist with that hash, which shows the trail was not cut short.

    Returns
    -------
    AuditReport
        Its first problem names the first row that does not fit.
    """
    problems: list[AuditProblem] = []
    hashes: dict[int, str] = {}
    expected_prev = GENESIS_HASH
    last_content: dict[int, tuple[int, str]] = {}
    calibrations: dict[int, tuple[int, str]] = {}
    rows = 0
    head: tuple[int, str] | None = None

    with db.session() as session:
        for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id)):
            rows += 1
            head = (entry.id, entry.row_hash)
            hashes[entry.id] = entry.row_hash
            row_problem = _check_row(entry, expected_prev)
            if row_problem is not None:
                problems.append(AuditProblem(entry.id, row_problem))
            expected_prev = entry.row_hash
            sample_id = _content_subject(entry)
            if sample_id is not None:
                details = json.loads(entry.details)
                last_content[sample_id] = (entry.id, str(details["content_sha256"]))
            calibration_id = _calibration_subject(entry)
            if calibration_id is not None:
                details = json.loads(entry.details)
                calibrations[calibration_id] = (entry.id, str(details["record_sha256"]))

        sample_ids = list(session.scalars(select(Sample.id).order_by(Sample.id)))
        for sample_id in sample_ids:
            problem = _check_sample(
                session, sample_id, last_content.pop(sample_id, None)
            )
            if problem is not None:
                problems.append(problem)
        for calibration in session.scalars(
            select(Calibration).order_by(Calibration.id)
        ):
            problem = _check_calibration(calibration, calibrations.get(calibration.id))
            if problem is not None:
                problems.append(problem)
        for sample_id, (row, _) in sorted(last_content.items()):
            problems.append(
                AuditProblem(
                    row, f"sample {sample_id} it records is not in the database"
                )
            )

    for row, expected in anchors:
        if hashes.get(row) != expected:
            problems.append(
                AuditProblem(
                    row,
                    "a signed export recorded this row as the audit head with hash "
                    f"{expected[:12]}..., but the trail "
                    + (
                        "has no such row: it was cut short"
                        if row not in hashes
                        else "holds another row there"
                    ),
                )
            )

    report = AuditReport(rows, len(sample_ids), head, tuple(problems))
    log.info(
        "audit trail: %d rows, %d samples, %d problems",
        rows,
        len(sample_ids),
        len(problems),
    )
    return report


def _check_row(entry: AuditEntry, expected_prev: str) -> str | None:
    if entry.prev_hash != expected_prev:
        return (
            f"its predecessor hash {entry.prev_hash[:12]}... is not the hash of the "
            f"row before it ({expected_prev[:12]}...): a row before it was removed, "
            "inserted or changed"
        )
    recomputed = row_hash(
        entry.prev_hash,
        recorded_at=entry.recorded_at,
        actor=entry.actor,
        role=entry.role,
        action=entry.action,
        outcome=entry.outcome,
        subject=entry.subject,
        details=entry.details,
    )
    if recomputed != entry.row_hash:
        return (
            f"its contents ({entry.action} {entry.subject} by {entry.actor} at "
            f"{entry.recorded_at}) do not hash to its recorded hash: the row was "
            "edited"
        )
    return None


def _content_subject(entry: AuditEntry) -> int | None:
    if entry.outcome != "ok" or entry.action not in CONTENT_ACTIONS:
        return None
    kind, _, number = entry.subject.partition(":")
    if kind != "sample" or not number.isdigit():
        return None
    try:
        details = json.loads(entry.details)
    except ValueError:
        return None
    return int(number) if "content_sha256" in details else None


def _calibration_subject(entry: AuditEntry) -> int | None:
    kind, _, number = entry.subject.partition(":")
    if entry.action != "calibrate" or entry.outcome != "ok" or kind != "calibration":
        return None
    return int(number) if number.isdigit() else None


def _check_calibration(
    calibration: Calibration, audited: tuple[int, str] | None
) -> AuditProblem | None:
    what = f"calibration {calibration.id} (version {calibration.version})"
    # The same canonical form as the store's record hash (ASCII-escaped JSON).
    actual = hashlib.sha256(
        json.dumps(calibration.record, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    figures = {
        key: calibration.record.get(key)
        for key in ("residual_px", "mm_per_px_top", "mm_per_px_bottom")
    }
    columns = {key: getattr(calibration, key) for key in figures}
    if actual != calibration.record_sha256 or figures != columns:
        return AuditProblem(
            None if audited is None else audited[0],
            f"{what}: its stored record or figures do not match its hash: changed "
            "outside the appliance",
        )
    if audited is None:
        return AuditProblem(
            None,
            f"{what} is stored but no audit row records it: written outside the "
            "appliance",
        )
    if audited[1] != actual:
        return AuditProblem(
            audited[0],
            f"{what}: its record (SHA-256 {actual[:12]}...) is not the one this row "
            "recorded: replaced outside the appliance",
        )
    return None


def _check_sample(
    session: Session, sample_id: int, audited: tuple[int, str] | None
) -> AuditProblem | None:
    if audited is None:
        return AuditProblem(
            None,
            f"sample {sample_id} is stored but no audit row records its capture: it "
            "was written outside the appliance",
        )
    row, expected = audited
    actual = sample_content_sha256(session, sample_id)
    if actual != expected:
        return AuditProblem(
            row,
            f"sample {sample_id}'s stored content (SHA-256 {actual[:12]}...) is not "
            f"the content this row recorded ({expected[:12]}...): the stored result "
            "was changed outside the appliance",
        )
    return None
