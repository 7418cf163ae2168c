"""Signed exports: the reports of one sample, a lot or a date range, in one folder.

Each report file is named by the sample's database id and report version
(``sample-12-v2.pdf``), never by text a user typed, and is listed with its SHA-256
in the folder's signed ``manifest.json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.certificate import certificate_pdf
from appliance.exports import ExportError, ExportFormat, seeds_csv
from appliance.exports import stored_report as read_report
from appliance.files import write_atomic
from appliance.identifiers import normalise_code
from appliance.records.audit import audit_head, sample_content_sha256
from appliance.records.signing import MANIFEST_NAME, ApplianceKey, write_manifest
from appliance.store import Database, ImageStore, get_sample, list_samples

log = logging.getLogger(__name__)

FORMATS: tuple[ExportFormat, ...] = ("pdf", "csv", "json")


@dataclass(frozen=True)
class ExportSelection:
    """Which samples to export: one by id, all of a lot, or a capture-time range.

    Attributes
    ----------
    sample_id : int, optional
        One stored sample.
    lot : str, optional
        Every sample of this lot (normalised like a typed lot code).
    since, until : datetime, optional
        Samples captured at or after `since` and before `until` (aware datetimes);
        they narrow a lot selection too.
    """

    sample_id: int | None = None
    lot: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.sample_id is None and self.lot is None and self.since is None:
            raise ExportError(
                "say what to export: a sample id, a lot (--lot) or a date (--since)"
            )
        if self.sample_id is not None and (self.lot or self.since or self.until):
            raise ExportError("give a sample id, or a lot and/or dates, not both")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ExportError(f"{name} {value.isoformat()} has no time zone")

    @property
    def subject(self) -> str:
        """How the audit trail names the selection."""
        if self.sample_id is not None:
            return f"sample:{self.sample_id}"
        parts = [f"lot:{self.lot}"] if self.lot else []
        if self.since or self.until:
            since = self.since.date().isoformat() if self.since else ""
            until = self.until.date().isoformat() if self.until else ""
            parts.append(f"dates:{since}..{until}")
        return " ".join(parts)


def select_samples(db: Database, selection: ExportSelection) -> list[int]:
    """Return the ids of the selected samples, oldest capture first.

    Raises
    ------
    SampleNotFound
        If the selection names one sample that is not stored.
    ExportError
        If a lot or date range selects nothing.
    InvalidSampleCode
        If the lot is not a valid lot code.
    """
    if selection.sample_id is not None:
        return [get_sample(db, selection.sample_id).id]
    lot = None if selection.lot is None else normalise_code(selection.lot, what="lot")
    listing = list_samples(db, lot=lot)
    chosen = [
        s.id
        for s in reversed(listing)
        if (selection.since is None or s.captured_at >= selection.since)
        and (selection.until is None or s.captured_at < selection.until)
    ]
    if not chosen:
        raise ExportError(f"no stored sample matches {selection.subject}")
    return chosen


@dataclass(frozen=True)
class SignedExport:
    """What `write_signed_export` wrote."""

    directory: Path
    files: tuple[Path, ...]
    manifest: Path
    samples: tuple[dict[str, Any], ...]
    key_fingerprint: str


def prepare_folder(out: Path) -> Path:
    """Return `out` made ready for an export: new, or an existing empty folder.

    Raises
    ------
    ExportError
        If `out` is a file or a folder that is not empty (an export folder holds
        its signed files and nothing else).
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(
            f"{out} exists and is not an empty folder; export into a new folder"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the export folder {out}: {exc}") from exc
    return out


def write_signed_export(
    db: Database,
    images: ImageStore,
    sample_ids: Sequence[int],
    *,
    formats: Sequence[ExportFormat],
    out: Path,
    key: ApplianceKey,
    lab: str = "",
    issued_by: str | None = None,
) -> SignedExport:
    """Write each sample's report in each format into `out`, and sign them.

    Parameters
    ----------
    db, images : Database, ImageStore
        The store.
    sample_ids : sequence of int
        The samples, e.g. from `select_samples`.
    formats : sequence of {"pdf", "csv", "json"}
        The formats to write for every sample.
    out : Path
        A new or empty folder (see `prepare_folder`).
    key : ApplianceKey
        The appliance key that signs the manifest.
    lab : str
        Laboratory name, printed on the PDF.
    issued_by : str, optional
        Who exports, printed on the PDF.

    Returns
    -------
    SignedExport
        The files, the manifest and what the manifest says of each sample.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ExportError(f"unknown formats {unknown}; use some of {list(FORMATS)}")
    out = prepare_folder(out)
    issued_at = datetime.now(UTC).isoformat(timespec="seconds")

    names: list[str] = []
    samples: list[dict[str, Any]] = []
    for sample_id in sample_ids:
        report = read_report(db, sample_id)
        version = int(report["report"]["version"])
        for fmt in formats:
            name = f"sample-{sample_id}-v{version}.{fmt}"
            data = _render(report, fmt, images, lab, issued_at, issued_by, key)
            write_atomic(out / name, data)
            names.append(name)
        with db.session() as session:
            content = sample_content_sha256(session, sample_id)
        sample = report["sample"]
        samples.append(
            {
                "id": sample_id,
                "lot": sample["lot"],
                "code": sample["code"],
                "report_version": version,
                "content_sha256": content,
            }
        )

    with db.session() as session:
        head = audit_head(session)
    manifest = write_manifest(out, names, key, samples=samples, audit_head=head)
    log.info("%d reports exported to %s", len(names), out)
    return SignedExport(
        out,
        tuple(out / n for n in names),
        manifest,
        tuple(samples),
        key.fingerprint,
    )


def _render(
    report: dict[str, Any],
    fmt: ExportFormat,
    images: ImageStore,
    lab: str,
    issued_at: str,
    issued_by: str | None,
    key: ApplianceKey,
) -> bytes:
    if fmt == "json":
        return (json.dumps(report, indent=1, ensure_ascii=False) + "\n").encode()
    if fmt == "csv":
        return seeds_csv(report).encode("utf-8")
    return certificate_pdf(
        report,
        images,
        lab=lab,
        issued_at=issued_at,
        issued_by=issued_by,
        key_fingerprint=key.fingerprint,
    )


__all__ = [
    "FORMATS",
    "MANIFEST_NAME",
    "ExportSelection",
    "SignedExport",
    "prepare_folder",
    "select_samples",
    "write_signed_export",
]
