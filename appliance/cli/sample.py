"""`seedqa` commands that look at seeds: simulate, segment, calibrate, capture."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from appliance import recipes
from appliance.calibrations import current_calibration
from appliance.classifier import classifier_for
from appliance.cli.common import (
    UsageError,
    acting_user,
    asker,
    json_default,
    open_records,
    open_rig_of,
    open_store,
    progress,
    rig_arguments,
    user_argument,
)
from appliance.imageio import read_rgb, write_png
from appliance.inspection import FrameRejected, Inspection, analyse
from appliance.overlay import draw_overlay, seed_overlay_styles
from appliance.records.accounts import Action
from appliance.report import region_json, sample_report
from appliance.rigs import Ask, RigHandle
from appliance.samples import SampleInfo
from appliance.segmentation import segment
from appliance.settings import Settings
from calibration import CalibrationMissing, load_record
from drivers.base import VIEWS
from drivers.replay import replay_rig
from drivers.scene import SampleSpec
from drivers.simulated import SimulatedBench

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's commands to the `seedqa` parser."""
    p = sub.add_parser("simulate", help="render a simulated sample with ground truth")
    p.add_argument("--out", type=Path, required=True, help="folder to write into")
    p.add_argument("--seeds", type=int, default=200, help="kernels on the plate (200)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the sample (0)")
    p.add_argument(
        "--touching",
        type=float,
        default=0.10,
        help="share of kernels touching a neighbour (0.10)",
    )
    p.set_defaults(run=cmd_simulate)

    p = sub.add_parser("segment", help="find the seeds in one image")
    p.add_argument("image", type=Path, help="image of seeds on a light background")
    p.add_argument("--json", action="store_true", help="print the seeds as JSON")
    p.add_argument("--labels", type=Path, help="write a 16-bit label PNG (0 = plate)")
    p.add_argument("--overlay", type=Path, help="write the image with seeds outlined")
    p.set_defaults(run=cmd_segment)

    p = sub.add_parser("calibrate", help="calibrate the rig (blank plate and target)")
    rig_arguments(p)
    user_argument(p)
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.set_defaults(run=cmd_calibrate)

    p = sub.add_parser("capture", help="capture, measure and store one sample")
    rig_arguments(p)
    p.add_argument("--recipe", default="maize", help="inspection recipe (maize)")
    p.add_argument("--lot", required=True, help="seed lot code")
    p.add_argument("--sample", required=True, help="sample code")
    p.add_argument(
        "--operator",
        help="who runs the sample, on an appliance with no accounts yet; with "
        "--user the account's name is recorded",
    )
    user_argument(p)
    p.add_argument("--seed", type=int, default=0, help="simulated sample seed (0)")
    p.add_argument("--out", type=Path, help="also write the report and overlays here")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=cmd_capture)

    p = sub.add_parser("inspect", help="measure a top/bottom pair of image files")
    p.add_argument("--top", type=Path, required=True, help="top-view image")
    p.add_argument("--bottom", type=Path, required=True, help="bottom-view image")
    p.add_argument(
        "--calibration",
        type=Path,
        help="calibration.json; default: the simulated rig's current one",
    )
    p.add_argument("--recipe", default="maize", help="inspection recipe (maize)")
    p.add_argument("--out", type=Path, help="also write the report and overlays here")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=cmd_inspect)


def cmd_simulate(args: argparse.Namespace) -> int:
    """Write top.png, bottom.png, their label images and truth.json."""
    if args.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {args.seeds}")
    if not 0 <= args.touching <= 1:
        raise UsageError(f"--touching must be between 0 and 1, got {args.touching}")
    bench = SimulatedBench(seed=args.seed)
    scene = bench.lay_sample(
        SampleSpec(n_kernels=args.seeds, touching_fraction=args.touching)
    )
    assert scene.truth is not None
    args.out.mkdir(parents=True, exist_ok=True)
    for view in VIEWS:
        write_png(args.out / f"{view}.png", scene.images[view])
        write_png(args.out / f"{view}_labels.png", scene.truth.labels[view])
    (args.out / "truth.json").write_text(json.dumps(scene.truth.to_json(), indent=1))
    print(f"simulated sample {args.seed} ({args.seeds} kernels) written to {args.out}")
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    """Segment one image and print or write what was found."""
    rgb = read_rgb(args.image)
    seg = segment(rgb)
    if args.labels:
        write_png(args.labels, seg.labels)
    if args.overlay:
        write_png(args.overlay, draw_overlay(rgb, seg))
    result = {
        "image": str(args.image),
        "width": rgb.shape[1],
        "height": rgb.shape[0],
        "frame_flags": list(seg.frame_flags),
        "seed_area_px": round(seg.seed_area_px, 1),
        "n_seeds": len(seg.seeds),
        "regions": [region_json(r) for r in seg.regions],
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        area = seg.seed_area_px
        print(f"{args.image}: {len(seg.seeds)} seeds, typical area {area:.0f} px")
        for flag in seg.frame_flags:
            print(f"  frame flag: {flag}")
    if not seg.usable:
        print(
            f"seedqa: {args.image} cannot be measured: {', '.join(seg.frame_flags)}",
            file=sys.stderr,
        )
        return 2
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Calibrate the rig and store the new version."""
    settings = Settings.load()
    records = open_records(settings)
    try:
        actor = acting_user(records, args)
        handle = open_rig_of(args, settings)
        try:
            _, record = records.calibrate(actor, handle, ask=asker(args))
        finally:
            handle.close()
    finally:
        records.db.close()
    data = record.to_json()
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        print(
            f"rig {record.rig} calibrated (version {record.version}): top-to-bottom "
            f"residual {record.residual_px:.3f} px, "
            f"{record.mm_per_px['top']:.4f} mm/px top, "
            f"{record.mm_per_px['bottom']:.4f} mm/px bottom"
        )
    return 0


def cmd_capture(args: argparse.Namespace) -> int:
    """Capture one sample and print its report."""
    if not args.user and not args.operator:
        raise UsageError("say who runs the sample: --user NAME, or --operator NAME")
    info = SampleInfo.create(
        lot=args.lot,
        code=args.sample,
        recipe=args.recipe,
        operator=args.operator or args.user,
    )
    settings = Settings.load()
    recipe = recipes.get(info.recipe)
    classifier = classifier_for(recipe, settings.models_dir)
    records = open_records(settings)
    try:
        actor = acting_user(records, args)
        records.require(actor, Action.CAPTURE, f"lot:{info.lot}")
        handle = open_rig_of(args, settings, seed=args.seed)
        try:
            try:
                calibration = records.calibration_for_capture(actor, handle)
            except CalibrationMissing as missing:
                _check_uncalibrated_frames(handle, asker(args), missing)
                raise
            stored = records.capture(
                actor,
                handle,
                info,
                calibration=calibration,
                classifier=classifier,
                recipe=recipe,
                ask=asker(args),
                progress=progress(),
            )
        finally:
            handle.close()
        report = stored.report
        if args.out:
            report["files"] = _write_outputs(args.out, stored.inspection, report)
    finally:
        records.db.close()
    _print_report(report, as_json=args.json)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Measure a pair of image files (nothing is stored)."""
    settings = Settings.load()
    recipe = recipes.get(args.recipe)
    classifier = classifier_for(recipe, settings.models_dir)
    if args.calibration:
        calibration = load_record(args.calibration)
    else:
        db, images = open_store(settings)
        try:
            _, calibration = current_calibration(db, images, "simulated")
        finally:
            db.close()
    for path in (args.top, args.bottom):
        read_rgb(path)  # a clear error for a missing or broken file, before work
    rig = replay_rig([args.top], [args.bottom])
    with rig:
        capture = rig.capture()
    inspection = analyse(
        capture, calibration, classifier=classifier, progress=progress()
    )
    meta = {
        "id": None,
        "lot": None,
        "code": None,
        "recipe": args.recipe,
        "operator": None,
        "captured_at": capture.top.timestamp,
        "rig": "replay",
    }
    report = sample_report(sample=meta, inspection=inspection, recipe=recipe)
    if args.out:
        report["files"] = _write_outputs(args.out, inspection, report)
    _print_report(report, as_json=args.json)
    return 0


def _check_uncalibrated_frames(
    handle: RigHandle, ask: Ask, missing: CalibrationMissing
) -> None:
    """Capture on an uncalibrated rig and raise the frame QC's verdict, if any."""
    handle.prepare("sample", ask)
    capture = handle.rig.capture()
    found = {}
    for view in VIEWS:
        frame = capture.frame(view)
        seg = segment(frame.pixels)
        if not seg.usable:
            raise FrameRejected(
                f"the {view} camera ({frame.serial}) delivered an unusable "
                f"{frame.shape[1]}x{frame.shape[0]} frame: "
                f"{', '.join(seg.frame_flags)}; no seeds can be measured and "
                "nothing was saved. Check the light, the exposure and that the "
                f"camera sees the plate; then calibrate the rig ({missing})"
            )
        found[view] = len(seg.seeds)
    raise CalibrationMissing(
        f"{missing}; its frames are usable ({found['top']} seeds seen from the "
        f"top, {found['bottom']} from the bottom) but cannot be measured or paired "
        "without a calibration; nothing was saved"
    )


def _write_outputs(
    out: Path, inspection: Inspection, report: dict[str, Any]
) -> dict[str, str]:
    """Write both overlays (seeds outlined in their class colour) and report.json."""
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for view, analysis in inspection.views.items():
        overlay = draw_overlay(
            analysis.corrected,
            analysis.segmentation,
            **seed_overlay_styles(inspection, view),
        )
        path = out / f"{view}_overlay.png"
        write_png(path, overlay)
        files[f"{view}_overlay"] = str(path)
    report_path = out / "report.json"
    files["report"] = str(report_path)
    report_path.write_text(json.dumps({**report, "files": files}, indent=1))
    return files


def _print_report(report: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=1, default=json_default))
        return
    sample, summary = report["sample"], report["summary"]
    print(
        f"sample {sample.get('code') or '-'} of lot {sample.get('lot') or '-'}"
        f" ({sample.get('recipe')})"
    )
    print(
        f"  seeds                 {summary['n_seeds']} ({summary['n_paired']} seen "
        f"from both sides)"
    )
    for name, count in summary.get("counts", {}).items():
        share = summary["shares_pct"][name]
        print(f"  {name:<21} {count:4d}  {share:5.1f}%")
    if "purity_by_count" in summary:
        by_count = summary["purity_by_count"]
        lo, hi = by_count["ci95_pct"]
        print(
            f"  purity by count       {by_count['value_pct']:.1f}% (95% CI {lo:.1f}-"
            f"{hi:.1f}%)"
        )
        print(
            f"  purity by weight      {summary['purity_by_weight_pct']:.1f}% "
            f"(est. {summary['estimated_mass_g']:.1f} g)"
        )
        corrected = summary.get("purity_corrected")
        if corrected:
            lo, hi = corrected["ci95_pct"]
            print(
                f"  corrected for errors  {corrected['value_pct']:.1f}% (95% CI "
                f"{lo:.1f}-{hi:.1f}%)"
            )
        print(f"  {summary['statement']}")
    flags = ", ".join(f"{k} {v}" for k, v in summary["flag_counts"].items())
    if flags:
        print(f"  flags                 {flags}")
    if sample.get("id") is not None:
        print(f"  stored as sample {sample['id']}")
    for name, path in report.get("files", {}).items():
        print(f"  {name}: {path}")
