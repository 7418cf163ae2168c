"""`seedqa` commands over what is stored: recipes and sample reports."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance import recipes
from appliance.bundle import BundleError, load_bundle
from appliance.cli.common import (
    UsageError,
    acting_user,
    open_records,
    user_argument,
)
from appliance.exports import stored_report
from appliance.records.exporting import FORMATS, ExportSelection
from appliance.records.signing import load_or_create_key
from appliance.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's commands to the `seedqa` parser."""
    p = sub.add_parser("recipes", help="list the recipes and their model bundles")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(run=cmd_recipes)

    p = sub.add_parser(
        "report",
        help="stored sample reports: export (signed), verify, amend, history",
        description="Export, check and amend stored sample reports.",
    )
    verbs = p.add_subparsers(dest="verb", required=True, metavar="ACTION")
    e = verbs.add_parser(
        "export",
        help="export reports into a new folder with a signed manifest (QA lead)",
        description="Write the PDF certificate, CSV and/or JSON of one sample, of "
        "every sample of a lot, or of a capture-date range into OUT, with "
        "OUT/manifest.json listing their SHA-256, signed with the appliance key.",
    )
    e.add_argument("sample", type=int, nargs="?", help="one sample id")
    e.add_argument("--lot", help="every sample of this lot")
    e.add_argument("--since", type=_date, help="captured on or after (YYYY-MM-DD, UTC)")
    e.add_argument("--until", type=_date, help="captured before (YYYY-MM-DD, UTC)")
    e.add_argument(
        "--format",
        default="pdf,csv,json",
        help="comma-separated formats among pdf, csv, json (all three)",
    )
    e.add_argument("--out", type=Path, required=True, help="new or empty folder")
    user_argument(e)
    e.set_defaults(run=cmd_export)

    v = verbs.add_parser(
        "verify",
        help="check that an exported file is genuine and unchanged",
        description="Check FILE (an exported report, its folder or its "
        "manifest.json) against the signed manifest. Exit 0 if genuine and "
        "unchanged, 1 naming what differs, 2 if it cannot be checked.",
    )
    v.add_argument("file", type=Path, help="exported file, folder or manifest.json")
    v.add_argument(
        "--key",
        type=Path,
        help="public key (PEM) of the signing appliance; default: this appliance's",
    )
    v.set_defaults(run=cmd_verify)

    a = verbs.add_parser(
        "amend",
        help="change one seed's class, with a reason (QA lead)",
        description="Change seed SEED of sample SAMPLE to CLASS. The measured class "
        "is kept, the sample's figures are recomputed and its report becomes "
        "'amended, version N'.",
    )
    a.add_argument("sample", type=int, help="sample id")
    a.add_argument("seed", type=int, help="seed number (as on the overlays)")
    a.add_argument("new_class", metavar="CLASS", help="the seed's correct class")
    a.add_argument("--reason", required=True, help="why, in a sentence")
    user_argument(a)
    a.set_defaults(run=cmd_amend)

    h = verbs.add_parser("history", help="a sample's report version and amendments")
    h.add_argument("sample", type=int, help="sample id")
    h.add_argument("--json", action="store_true", help="print as JSON")
    h.set_defaults(run=cmd_history)

    k = verbs.add_parser(
        "key", help="print the appliance's public key (PEM), for report checkers"
    )
    k.set_defaults(run=cmd_key)


def _date(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date; use YYYY-MM-DD or an ISO 8601 time"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def cmd_recipes(args: argparse.Namespace) -> int:
    """List the recipes with their bundles' paths and versions."""
    settings = Settings.load()
    rows = []
    for recipe in recipes.available():
        path = recipe.bundle_path(settings.models_dir)
        row: dict[str, Any] = {
            "name": recipe.name,
            "species": recipe.species,
            "classes": list(recipe.classes),
            "pure_classes": list(recipe.pure_classes),
            "bundle": str(path),
            "installed": path.is_file(),
            "version": None,
            "sha256": None,
        }
        if path.is_file():
            try:
                bundle = load_bundle(path)
                row.update(
                    version=bundle.info.version,
                    sha256=bundle.sha256,
                    accuracy=bundle.info.metrics.get("accuracy"),
                )
            except BundleError as exc:
                row["error"] = str(exc)
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in rows:
        if row.get("error"):
            state = f"INVALID: {row['error']}"
        elif row["installed"]:
            state = f"v{row['version']} ({row['sha256'][:12]})"
        else:
            state = f"not built: seedqa-models recipe build {row['name']}"
        print(f"{row['name']:<8} {row['species']:<20} {row['bundle']}  {state}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export reports into a new folder, signed."""
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise UsageError(f"unknown --format {unknown}; use some of {list(FORMATS)}")
    selection = ExportSelection(
        sample_id=args.sample, lot=args.lot, since=args.since, until=args.until
    )
    settings = Settings.load()
    records = open_records(settings)
    try:
        actor = acting_user(records, args)
        export = records.export(actor, selection, formats=formats, out=args.out)
    finally:
        records.db.close()
    for path in export.files:
        print(path)
    print(f"{export.manifest} (signed by {export.key_fingerprint[:23]}...)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Check an exported file against its signed manifest."""
    settings = Settings.load()
    records = open_records(settings)
    try:
        result = records.verify_export(args.file, key=args.key)
    finally:
        records.db.close()
    if result.ok:
        print(
            f"genuine and unchanged: {', '.join(result.checked)} (manifest "
            f"{result.manifest}, signed by {result.signer})"
        )
        return 0
    for problem in result.problems:
        print(f"NOT GENUINE: {problem}")
    return 1


def cmd_amend(args: argparse.Namespace) -> int:
    """Change one seed's class with a reason."""
    settings = Settings.load()
    records = open_records(settings)
    try:
        actor = acting_user(records, args)
        amendment = records.amend(
            actor,
            args.sample,
            seed_index=args.seed,
            new_class=args.new_class,
            reason=args.reason,
        )
        report = stored_report(records.db, args.sample)
    finally:
        records.db.close()
    purity = report["summary"].get("purity_by_count", {})
    print(
        f"sample {args.sample} seed {amendment.seed_index}: {amendment.old_class} -> "
        f"{amendment.new_class}; report is now amended, version {amendment.version}"
        + (f"; purity by count {purity['value_pct']:.1f}%" if purity else "")
    )
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """Print a sample's report version and amendment history."""
    settings = Settings.load()
    records = open_records(settings)
    try:
        report = stored_report(records.db, args.sample)
    finally:
        records.db.close()
    version, amendments = report["report"], report["amendments"]
    if args.json:
        print(json.dumps({"report": version, "amendments": amendments}, indent=1))
        return 0
    print(f"sample {args.sample}: version {version['version']} ({version['status']})")
    for entry in amendments:
        print(
            f"  v{entry['version']} {entry['at']} {entry['by']}: seed {entry['seed']} "
            f"{entry['from']} -> {entry['to']}: {entry['reason']}"
        )
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    """Print the appliance's public key."""
    settings = Settings.load()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = load_or_create_key(settings.data_dir)
    print(key.public_pem(), end="")
    print(f"# {key.fingerprint}")
    return 0
