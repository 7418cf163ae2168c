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

import cv2
import numpy as np

from appliance.files import write_atomic
from appliance.overlay import class_colour
from appliance.store import Database, ImageStore, get_sample

log = logging.getLogger(__name__)

ExportFormat = Literal["json", "csv", "pdf"]

#: Leading characters that make a spreadsheet treat a cell as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ExportError(ValueError):
    """A report cannot be exported as asked."""


def stored_report(db: Database, sample_id: int) -> dict[str, Any]:
    """Return the report of a stored sample, as `seedqa capture --json` printed it."""
    record = get_sample(db, sample_id)
    head = dict(record.summary or {})
    if "sample" not in head:
        raise ExportError(f"sample {sample_id} was stored without a report")
    head["sample"] = {**head["sample"], "id": record.id}
    head["seeds"] = [dict(seed.data or {}) for seed in record.seeds]
    head["captures"] = {
        c.view: {"image_sha256": c.image_sha256, "width": c.width, "height": c.height}
        for c in record.captures
    }
    return head


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
        data = report_pdf(report, images)
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
    """One row per seed: index, classes, probabilities, area, flags."""
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
        ]
    )
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
                )
            ]
        )
    return buffer.getvalue()


def report_pdf(report: dict[str, Any], images: ImageStore) -> bytes:
    """Render a one-page PDF: sample details, purity, class table, both views."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sample, summary = report["sample"], report["summary"]
    classes = tuple((sample.get("model") or {}).get("classes", ()))
    fig = plt.figure(figsize=(8.27, 11.69), dpi=100)  # A4 portrait
    fig.text(
        0.06,
        0.96,
        f"Physical purity report: sample {sample['code']}",
        fontsize=15,
        weight="bold",
    )
    lines = [
        f"Lot {sample['lot']}   Sample {sample['code']}   Recipe {sample['recipe']}",
        f"Operator {sample['operator']}   Captured {sample['captured_at']}",
        f"Rig {sample['rig']}   Calibration v{sample['calibration']['version']}   "
        f"Model {(sample.get('model') or {}).get('name', '-')} "
        f"v{(sample.get('model') or {}).get('version', '-')} "
        f"({((sample.get('model') or {}).get('sha256') or '')[:12]})",
    ]
    for i, line in enumerate(lines):
        fig.text(0.06, 0.93 - 0.02 * i, line, fontsize=9)

    rows = [
        [name, str(count), f"{summary['shares_pct'][name]:.1f}%"]
        for name, count in summary.get("counts", {}).items()
    ]
    table_ax = fig.add_axes((0.06, 0.70, 0.4, 0.15))
    table_ax.axis("off")
    if rows:
        table_ax.table(
            cellText=rows,
            colLabels=["class", "seeds", "share"],
            loc="upper left",
            cellLoc="left",
        )
    figures = []
    if "purity_by_count" in summary:
        pc, pw = summary["purity_by_count"], summary["purity_by_weight"]
        figures += [
            f"Seeds: {summary['n_seeds']}",
            f"Purity by count: {pc['value_pct']:.1f}% "
            f"(95% CI {pc['ci95_pct'][0]:.1f}-{pc['ci95_pct'][1]:.1f}%)",
            f"Purity by weight: {pw['value_pct']:.1f}% "
            f"(95% CI {pw['ci95_pct'][0]:.1f}-{pw['ci95_pct'][1]:.1f}%)",
        ]
        if summary.get("purity_corrected"):
            pk = summary["purity_corrected"]
            figures.append(
                f"Corrected for classifier error: {pk['value_pct']:.1f}% "
                f"(95% CI {pk['ci95_pct'][0]:.1f}-{pk['ci95_pct'][1]:.1f}%)"
            )
        figures.append(summary["statement"])
    flags = ", ".join(f"{k}: {v}" for k, v in summary.get("flag_counts", {}).items())
    figures.append(f"Flags: {flags or 'none'}")
    for i, line in enumerate(figures):
        fig.text(0.5, 0.84 - 0.022 * i, line, fontsize=9, wrap=True)

    for j, view in enumerate(("top", "bottom")):
        capture = report.get("captures", {}).get(view)
        if capture is None:
            continue
        ax = fig.add_axes((0.06, 0.37 - 0.33 * j, 0.88, 0.31))
        ax.imshow(
            annotated_view(
                images.read_image(capture["image_sha256"]), report, view, classes
            )
        )
        ax.set_title(f"{view} view", fontsize=9)
        ax.axis("off")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="pdf")
    plt.close(fig)
    return buffer.getvalue()


def annotated_view(
    rgb: np.ndarray, report: dict[str, Any], view: str, classes: tuple[str, ...]
) -> np.ndarray:
    """Shrink a stored view to 1000 px and box each seed in its class's colour.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 ndarray
        The stored capture of `view`.
    report : dict
        The sample's stored report (`stored_report`).
    view : {"top", "bottom"}
        Which view `rgb` is.
    classes : tuple of str
        The model's classes, for the colours of classes without a fixed one.
    """
    scale = 1000 / max(rgb.shape[:2])
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    for seed in report["seeds"]:
        region = seed.get(view)
        if not region or not seed.get("fused_class"):
            continue
        x, y, w, h = (int(round(v * scale)) for v in region["bbox"])
        colour = class_colour(seed["fused_class"], classes)
        cv2.rectangle(small, (x, y), (x + w, y + h), colour, 2)
    return small
