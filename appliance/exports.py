"""Exporting a stored sample's report as JSON, CSV or PDF.

The report is rebuilt from the database (the sample row's report head and one
row per seed), so an export says exactly what was stored.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any, Literal

from appliance.certificate import certificate_pdf
from appliance.files import write_atomic
from appliance.records.amendments import list_amendments
from appliance.store import Database, ImageStore, SeedRecord, get_sample

log = logging.getLogger(__name__)

ExportFormat = Literal["json", "csv", "pdf"]

#: Leading characters that make a spreadsheet treat a cell as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ExportError(ValueError):
    """A report cannot be exported as asked."""


def stored_report(db: Database, sample_id: int) -> dict[str, Any]:
    """Return the report of a stored sample, as `seedqa capture --json` printed it.

    An amended sample's seeds carry their amended ``fused_class`` and the measured
    one as ``measured_class``; ``amendments`` lists the history, oldest first, and
    ``report`` holds the version and status (``"original"`` or ``"amended"``).
    """
    record = get_sample(db, sample_id)
    head = dict(record.summary or {})
    if "sample" not in head:
        raise ExportError(f"sample {sample_id} was stored without a report")
    head["sample"] = {**head["sample"], "id": record.id}
    head.setdefault("report", {"version": 1, "status": "original"})
    head["seeds"] = [_stored_seed(seed) for seed in record.seeds]
    head["captures"] = {
        c.view: {"image_sha256": c.image_sha256, "width": c.width, "height": c.height}
        for c in record.captures
    }
    with db.session() as session:
        head["amendments"] = [a.to_json() for a in list_amendments(session, sample_id)]
    return head


def _stored_seed(seed: SeedRecord) -> dict[str, Any]:
    out = dict(seed.data or {})
    measured = out.get("fused_class")
    if seed.fused_class != measured:
        out["fused_class"] = seed.fused_class
        out["measured_class"] = measured
    return out


def export_sample(
    db: Database, images: ImageStore, sample_id: int, *, fmt: ExportFormat, out: Path
) -> Path:
    """Write one sample's report to `out` (atomically) and return the path.

    Raises
    ------
    SampleNotFound
        If there is no such sample.
    ExportError
        For an unknown format or an unwritable destination.
    """
    report = stored_report(db, sample_id)
    if fmt == "json":
        data = json.dumps(report, indent=1).encode()
    elif fmt == "csv":
        data = seeds_csv(report).encode()
    elif fmt == "pdf":
        data = certificate_pdf(report, images)
    else:
        raise ExportError(f"unknown format {fmt!r}; use json, csv or pdf")
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, data)
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {exc}") from exc
    log.info("sample %d exported as %s to %s", sample_id, fmt, out)
    return out


def safe_cell(value: Any) -> str:
    """Return a CSV cell a spreadsheet will show as text, never run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def seeds_csv(report: dict[str, Any]) -> str:
    """Return one CSV row per seed: index, classes, probability, area, flags.

    Every cell goes through `safe_cell`, so none starts a spreadsheet formula.
    """
    sample = report["sample"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "sample_id",
            "lot",
            "code",
            "seed",
            "fused_class",
            "fused_probability",
            "top_class",
            "bottom_class",
            "area_mm2",
            "flags",
            "measured_class",
            "report_version",
        ]
    )
    version = (report.get("report") or {}).get("version", 1)
    for seed in report["seeds"]:
        top, bottom = seed.get("top"), seed.get("bottom")
        writer.writerow(
            [
                safe_cell(v)
                for v in (
                    sample["id"],
                    sample["lot"],
                    sample["code"],
                    seed["index"],
                    seed.get("fused_class"),
                    seed.get("fused_probability"),
                    (top or {}).get("class"),
                    (bottom or {}).get("class"),
                    seed.get("area_mm2"),
                    ";".join(seed.get("flags", [])),
                    seed.get("measured_class", seed.get("fused_class")),
                    version,
                )
            ]
        )
    return buffer.getvalue()
