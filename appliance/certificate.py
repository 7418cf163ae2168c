"""A sample's report as a one-page laboratory certificate (PDF).

The page carries who measured what, with which rig, calibration and model; the
class table and the purity figures with their intervals; the flags; the amendment
history; both views with each seed boxed in its class colour; and the statement
that the figures are an image-based estimate.
"""

from __future__ import annotations

import io
import logging
import textwrap
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from appliance.overlay import boxed_view, class_colour
from appliance.store import ImageStore

log = logging.getLogger(__name__)

A4_PORTRAIT_IN = (8.27, 11.69)
_LEFT, _RIGHT = 0.06, 0.94
_INK, _GREY, _RULE = "#111111", "#555555", "#999999"


def certificate_pdf(
    report: dict[str, Any],
    images: ImageStore,
    *,
    lab: str = "",
    issued_at: str | None = None,
    issued_by: str | None = None,
    key_fingerprint: str | None = None,
) -> bytes:
    """Render a stored sample's report as a one-page A4 certificate.

    Parameters
    ----------
    report : dict
        The stored report (`appliance.exports.stored_report`).
    images : ImageStore
        Where the sample's captures are.
    lab : str
        The laboratory's name, from the settings.
    issued_at, issued_by : str, optional
        When and by whom the report was exported.
    key_fingerprint : str, optional
        The appliance key that signs the export's manifest.

    Returns
    -------
    bytes
        The PDF file.
    """
    fig = Figure(figsize=A4_PORTRAIT_IN, dpi=100)
    page = _Page(fig)
    sample, summary = report["sample"], report["summary"]
    version = report.get("report", {"version": 1, "status": "original"})

    page.header(lab, sample, version)
    page.details(_detail_rows(report, issued_at, issued_by))
    page.results(sample, summary, len(report.get("amendments", [])))
    page.amendments(report.get("amendments", []))
    page.views(report, images)
    page.signoff(sample, issued_by, key_fingerprint)
    page.footer(summary, key_fingerprint)

    buffer = io.BytesIO()
    fig.savefig(buffer, format="pdf", metadata={"Title": _title(sample, version)})
    return buffer.getvalue()


def _title(sample: dict[str, Any], version: dict[str, Any]) -> str:
    state = "amended" if version.get("status") == "amended" else "original"
    return (
        f"Physical purity certificate, lot {sample.get('lot')} sample "
        f"{sample.get('code')}, version {version.get('version', 1)} ({state})"
    )


def _detail_rows(
    report: dict[str, Any], issued_at: str | None, issued_by: str | None
) -> list[tuple[str, str]]:
    sample = report["sample"]
    model = sample.get("model") or {}
    calibration = sample.get("calibration") or {}
    cameras = sample.get("cameras") or {}
    serials = ", ".join(f"{v} {c.get('serial')}" for v, c in cameras.items())
    mm = calibration.get("mm_per_px") or {}
    rows = [
        ("Lot", str(sample.get("lot"))),
        ("Sample code", f"{sample.get('code')}   (record {sample.get('id')})"),
        ("Recipe", str(sample.get("recipe"))),
        ("Operator", str(sample.get("operator"))),
        ("Captured (UTC)", _when(sample.get("captured_at"))),
        ("Rig", f"{sample.get('rig')}   cameras: {serials or '-'}"),
        (
            "Calibration",
            f"version {calibration.get('version', '-')} of "
            f"{_when(calibration.get('created_at'))}, residual "
            f"{calibration.get('residual_px', '-')} px, "
            f"{mm.get('top', '-')} / {mm.get('bottom', '-')} mm/px (top / bottom)",
        ),
        (
            "Model",
            f"{model.get('name', 'none')} version {model.get('version', '-')}, "
            f"{model.get('numeric', '-')}, SHA-256 {str(model.get('sha256', ''))[:16]}",
        ),
        (
            "Report issued",
            f"{_when(issued_at)}" + (f" by {issued_by}" if issued_by else ""),
        ),
    ]
    return rows


def _when(value: Any) -> str:
    if not value:
        return "-"
    text = str(value).replace("T", " ")
    return text.split(".")[0].removesuffix("+00:00")


class _Page:
    """Lays text out top to bottom on one figure; `y` is the next free line."""

    def __init__(self, fig: Figure) -> None:
        self.fig = fig
        self.y = 0.965

    def text(self, x: float, text: str, *, size: float = 8.0, **kw: Any) -> None:
        kw.setdefault("color", _INK)
        self.fig.text(x, self.y, text, fontsize=size, parse_math=False, va="top", **kw)

    def rule(self, gap: float = 0.008) -> None:
        self.y -= gap
        self.fig.add_artist(
            _line(self.fig, (_LEFT, _RIGHT), (self.y, self.y), colour=_RULE)
        )
        self.y -= gap

    def heading(self, text: str) -> None:
        self.text(_LEFT, text.upper(), size=8.5, weight="bold", color=_GREY)
        self.y -= 0.018

    def header(self, lab: str, sample: dict[str, Any], version: dict[str, Any]) -> None:
        self.text(_LEFT, lab or "Seed testing laboratory", size=10, weight="bold")
        amended = version.get("status") == "amended"
        state = (
            f"Report version {version.get('version', 1)}, AMENDED"
            if amended
            else "Report version 1, original"
        )
        self.text(_RIGHT, state, size=9, ha="right", weight="bold" if amended else None)
        self.y -= 0.026
        self.text(_LEFT, "Certificate of physical purity analysis", size=16)
        self.y -= 0.03
        self.text(
            _LEFT,
            f"Lot {sample.get('lot')}  ·  sample {sample.get('code')}  ·  "
            "image-based estimate from seed photographs",
            size=9,
            color=_GREY,
        )
        self.y -= 0.014
        self.rule()

    def details(self, rows: Sequence[tuple[str, str]]) -> None:
        for label, value in rows:
            self.text(_LEFT, label, color=_GREY)
            self.text(_LEFT + 0.16, value)
            self.y -= 0.0165
        self.rule()

    def results(
        self, sample: dict[str, Any], summary: dict[str, Any], amendments: int
    ) -> None:
        plural = "" if amendments == 1 else "s"
        self.heading(
            f"Results, recomputed after {amendments} amendment{plural}"
            if amendments
            else "Results"
        )
        top = self.y
        pure = set((sample.get("model") or {}).get("pure_classes", ()))
        columns = (_LEFT, _LEFT + 0.17, _LEFT + 0.25)
        for x, name in zip(columns, ("Class", "Seeds", "By count"), strict=True):
            self.text(x, name, weight="bold")
        self.y -= 0.017
        for name, count in summary.get("counts", {}).items():
            label = f"{name} (pure seed)" if name in pure else name
            share = summary.get("shares_pct", {}).get(name, 0.0)
            for x, cell in zip(
                columns, (label, str(count), f"{share:.1f} %"), strict=True
            ):
                self.text(x, cell)
            self.y -= 0.0155
        self.text(columns[0], "Total", weight="bold")
        self.text(columns[1], str(summary.get("n_seeds", 0)), weight="bold")
        bottom = self.y

        self.y = top
        x = 0.47
        for line, bold in _figure_lines(summary):
            self.text(x, line, size=8.5 if bold else 8, weight="bold" if bold else None)
            self.y -= 0.018 if bold else 0.016
        self.y = min(self.y, bottom) - 0.012
        self.rule()

    def amendments(self, amendments: Sequence[dict[str, Any]]) -> None:
        self.heading("Amendment history")
        if not amendments:
            self.text(_LEFT, "None: every seed carries the class the model gave it.")
            self.y -= 0.016
            self.rule()
            return
        columns = (_LEFT, _LEFT + 0.05, _LEFT + 0.10, _LEFT + 0.30, _LEFT + 0.64)
        heads = ("Ver.", "Seed", "Class change", "Reason", "By, at (UTC)")
        for x, name in zip(columns, heads, strict=True):
            self.text(x, name, weight="bold")
        self.y -= 0.016
        for entry in amendments[-8:]:
            reason = textwrap.wrap(str(entry["reason"]), 44)[:3] or [""]
            cells = (
                str(entry["version"]),
                str(entry["seed"]),
                f"{entry['from']} → {entry['to']}",
                reason[0],
                f"{entry['by']}, {_when(entry['at'])}",
            )
            for x, cell in zip(columns, cells, strict=True):
                self.text(x, cell)
            for more in reason[1:]:
                self.y -= 0.014
                self.text(columns[3], more)
            self.y -= 0.016
        if len(amendments) > 8:
            self.text(_LEFT, f"(first {len(amendments) - 8} amendments in the JSON)")
            self.y -= 0.016
        self.rule()

    def views(self, report: dict[str, Any], images: ImageStore) -> None:
        classes = tuple((report["sample"].get("model") or {}).get("classes", ()))
        width = 0.43
        page_w, page_h = A4_PORTRAIT_IN
        label_y = self.y
        lowest = self.y
        for j, view in enumerate(("top", "bottom")):
            capture = report.get("captures", {}).get(view)
            left = _LEFT + j * 0.45
            self.fig.text(
                left, label_y, f"{view.capitalize()} view", fontsize=8, va="top"
            )
            if capture is None:
                continue
            rgb = images.read_image(capture["image_sha256"])
            aspect = rgb.shape[0] / rgb.shape[1]
            height = min(width * aspect * page_w / page_h, label_y - 0.16)
            bottom = label_y - 0.016 - height
            ax = self.fig.add_axes((left, bottom, width, height))
            ax.imshow(boxed_view(rgb, report["seeds"], view, classes, side_px=900))
            ax.set_axis_off()
            lowest = min(lowest, bottom)
        self.y = lowest - 0.008
        for k, name in enumerate(classes):
            r, g, b = class_colour(name, classes)
            self.fig.text(
                _LEFT + 0.14 * k,
                self.y,
                f"■ {name}",
                fontsize=7.5,
                va="top",
                color=(r / 255, g / 255, b / 255),
                parse_math=False,
            )
        if not classes:
            self.text(_LEFT, "Seeds not classified", size=7.5)
        self.y -= 0.02

    def signoff(
        self, sample: dict[str, Any], issued_by: str | None, key: str | None
    ) -> None:
        self.text(
            _LEFT,
            "Boxes are drawn in each seed's class colour, thicker where a seed was "
            "amended; the CSV and JSON exports list every seed by its number.",
            size=7,
            color=_GREY,
        )
        self.y -= 0.04
        for x, role, name in (
            (_LEFT, "Measured by (operator)", sample.get("operator")),
            (0.52, "Issued by", issued_by),
        ):
            self.fig.add_artist(
                _line(self.fig, (x, x + 0.36), (self.y, self.y), colour=_INK)
            )
            self.fig.text(
                x,
                self.y - 0.006,
                f"{role}: {name or '-'}",
                fontsize=8,
                va="top",
                parse_math=False,
            )
        self.y -= 0.022
        if key:
            self.text(0.52, "signed electronically (Ed25519)", size=7, color=_GREY)
        self.y -= 0.015

    def footer(self, summary: dict[str, Any], key_fingerprint: str | None) -> None:
        self.y = min(self.y, 0.085)
        self.rule(0.004)
        statement = summary.get("statement") or (
            "Image-based estimate of physical purity from seed photographs."
        )
        self.text(_LEFT, statement, size=8, weight="bold")
        self.y -= 0.015
        if key_fingerprint:
            self.text(
                _LEFT,
                "This file is listed in the export's manifest.json, signed with the "
                f"appliance key {key_fingerprint[:23]}...;",
                size=7,
                color=_GREY,
            )
            self.y -= 0.012
            self.text(
                _LEFT,
                "check it is genuine and unchanged with `seedqa report verify FILE`.",
                size=7,
                color=_GREY,
            )


def _figure_lines(summary: dict[str, Any]) -> list[tuple[str, bool]]:
    if "purity_by_count" not in summary:
        return [("Seeds were not classified: no purity figures.", True)]
    pc, pw = summary["purity_by_count"], summary["purity_by_weight"]
    lines = [
        (f"Purity by count   {_estimate(pc)}", True),
        (f"Purity by weight  {_estimate(pw)}", True),
    ]
    corrected = summary.get("purity_corrected")
    if corrected:
        lines.append((f"Corrected for classifier error  {_estimate(corrected)}", True))
    else:
        lines.append(("Corrected estimate: no confusion matrix in the model", False))
    lines += [
        (f"Estimated sample mass {summary.get('estimated_mass_g', 0):.3f} g", False),
        (
            f"Seeds {summary.get('n_seeds')}: {summary.get('n_paired')} seen from both "
            f"sides, {summary.get('n_top_only')} top only, "
            f"{summary.get('n_bottom_only')} bottom only",
            False,
        ),
    ]
    flags = summary.get("flag_counts") or {}
    text = ", ".join(f"{k}\u00a0{v}" for k, v in flags.items()) or "none"
    for k, part in enumerate(textwrap.wrap(f"Flags: {text}", 60)[:3]):
        lines.append((part if k == 0 else "    " + part, False))
    return lines


def _estimate(value: dict[str, Any]) -> str:
    low, high = value["ci95_pct"]
    return f"{value['value_pct']:.1f} %  (95 % CI {low:.1f} – {high:.1f} %)"


def _line(
    fig: Figure, xs: tuple[float, float], ys: tuple[float, float], *, colour: str
) -> Any:
    from matplotlib.lines import Line2D

    return Line2D(xs, ys, transform=fig.transFigure, color=colour, linewidth=0.6)
