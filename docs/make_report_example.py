"""Make docs/report-example.pdf and a PNG of its first page from a simulated sample.

The sample is captured on the simulated rig by an operator account, one seed is
amended by a QA lead with a reason, and the signed export's PDF is copied here.

    PYTHONPATH=. python docs/make_report_example.py --model PATH/maize-sim.safetensors

`--model` defaults to the maize bundle installed in the data directory
(`seedqa-models recipe build maize` makes it). The PNG needs `pdftoppm` (Debian
package poppler-utils); without it the PDF is still written and the script says so.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from appliance import recipes
from appliance.classifier import classifier_for
from appliance.exports import stored_report
from appliance.records.accounts import Role
from appliance.records.exporting import ExportSelection
from appliance.records.service import Records
from appliance.rigs import open_rig
from appliance.samples import SampleInfo
from appliance.settings import Settings
from appliance.store import Database, ImageStore, sqlite_url

DOCS = Path(__file__).resolve().parent
LAB = "Example Seed Testing Laboratory, Bench 1"


def main() -> int:
    """Capture, amend and export the example sample; write the PDF and the PNG."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="maize bundle (.safetensors)")
    parser.add_argument("--seed", type=int, default=11, help="simulated sample seed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    recipe = recipes.get("maize")
    model = args.model or recipe.bundle_path(Settings.load().models_dir)
    if not model.is_file():
        print(
            f"no maize model at {model}: run `seedqa-models recipe build maize` "
            "or pass --model PATH",
            file=sys.stderr,
        )
        return 2

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        (root / "models").mkdir(parents=True)
        shutil.copy(model, recipe.bundle_path(root / "models"))
        settings = Settings(root, sqlite_url(root / "seedqa.db"), lab=LAB)
        db = Database.open(settings.database_url)
        records = Records(db, ImageStore(settings.images_dir), settings)
        try:
            pdf = _make(records, settings, recipe, args.seed, Path(tmp) / "export")
            shutil.copy(pdf, DOCS / "report-example.pdf")
        finally:
            db.close()
    print(f"wrote {DOCS / 'report-example.pdf'}")

    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        print(
            "pdftoppm is not installed (apt-get install poppler-utils): the PNG of "
            "the first page was NOT made",
            file=sys.stderr,
        )
        return 1
    subprocess.run(
        [
            pdftoppm,
            "-png",
            "-r",
            "110",
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(DOCS / "report-example.pdf"),
            str(DOCS / "report-example"),
        ],
        check=True,
    )
    print(f"wrote {DOCS / 'report-example.png'}")
    return 0


def _make(
    records: Records, settings: Settings, recipe: recipes.Recipe, seed: int, out: Path
) -> Path:
    bench = records.open_bench()
    records.add_user(bench, "erik", Role.ENGINEER, "engineer-pin")
    erik = records.sign_in("erik", "engineer-pin")
    records.add_user(erik, "olivia", Role.OPERATOR, "operator-pin")
    records.add_user(erik, "quentin", Role.QA_LEAD, "qa-lead-pin")

    olivia = records.sign_in("olivia", "operator-pin")
    handle = open_rig("simulated", seed=seed)
    try:
        handle_cal = records.calibrate(erik, handle)
        info = SampleInfo.create(
            lot="MZ-2026-0412", code="S-0007", recipe="maize", operator="olivia"
        )
        stored = records.capture(
            olivia,
            handle,
            info,
            calibration=handle_cal,
            classifier=classifier_for(recipe, settings.models_dir),
            recipe=recipe,
        )
    finally:
        handle.close()

    quentin = records.sign_in("quentin", "qa-lead-pin")
    report = stored_report(records.db, stored.id)
    seed_row = next(s for s in report["seeds"] if s["fused_class"] == "pure")
    records.amend(
        quentin,
        stored.id,
        seed_index=seed_row["index"],
        new_class="broken",
        reason="Crack across the germ visible under the bench lens",
    )
    export = records.export(
        quentin, ExportSelection(sample_id=stored.id), formats=["pdf"], out=out
    )
    assert records.verify_export(export.files[0]).ok
    return export.files[0]


if __name__ == "__main__":
    sys.exit(main())
