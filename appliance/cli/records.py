"""`seedqa` commands over what is stored: recipes and sample reports."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from appliance import recipes
from appliance.bundle import BundleError, load_bundle
from appliance.cli.common import open_store
from appliance.exports import export_sample
from appliance.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's commands to the `seedqa` parser."""
    p = sub.add_parser("recipes", help="list the recipes and their model bundles")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(run=cmd_recipes)

    p = sub.add_parser("report", help="stored sample reports")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="ACTION")
    e = verbs.add_parser("export", help="export a stored sample's report")
    e.add_argument("sample", type=int, help="sample id (see the capture's output)")
    e.add_argument("--format", choices=["json", "csv", "pdf"], required=True)
    e.add_argument("--out", type=Path, required=True, help="file to write")
    e.set_defaults(run=cmd_export)


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
    """Export a stored sample's report as JSON, CSV or PDF."""
    settings = Settings.load()
    db, images = open_store(settings)
    try:
        path = export_sample(db, images, args.sample, fmt=args.format, out=args.out)
    finally:
        db.close()
    print(f"sample {args.sample} exported to {path}")
    return 0
