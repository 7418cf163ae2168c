import csv
import io
import json
import threading

import numpy as np
import pytest

from appliance import recipes
from appliance.bundle import load_bundle
from appliance.classifier import SeedClassifier
from appliance.exports import export_sample, safe_cell
from appliance.inspection import FrameRejected, InspectionCancelled, analyse
from appliance.report import SCHEMA_VERSION, sample_report
from appliance.rigs import open_rig
from appliance.samples import SampleInfo, capture_sample
from appliance.settings import Settings
from appliance.store import Database, ImageStore, get_sample, list_samples
from drivers.base import Frame, RigCapture
from drivers.scene import SampleSpec

MAIZE = recipes.get("maize")


@pytest.fixture(scope="module")
def classifier(untrained_bundle):
    return SeedClassifier(load_bundle(untrained_bundle), numeric="fp32")


def _capture(scene):
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return RigCapture(
        Frame(scene.images["top"], "SIM-TOP", "top", now, 8000.0),
        Frame(scene.images["bottom"], "SIM-BOTTOM", "bottom", now, 8000.0),
    )


@pytest.fixture(scope="module")
def inspection(samples, calibration, classifier):
    return analyse(_capture(samples[0]), calibration, classifier=classifier)


def test_every_seed_gets_a_fused_verdict(inspection):
    assert len(inspection.seeds) >= 195
    for seed in inspection.seeds:
        assert seed.verdict is not None
        assert inspection.fused_class(seed) in MAIZE.classes
        for view in ("top", "bottom"):
            region = getattr(seed.pair, view)
            assert (seed.probs(view) is None) == (region is None)


def test_report_has_the_documented_keys(inspection):
    meta = {
        "id": 1,
        "lot": "L",
        "code": "S",
        "recipe": "maize",
        "operator": "Ann",
        "captured_at": inspection.capture.top.timestamp,
        "rig": "simulated",
    }
    report = json.loads(
        json.dumps(sample_report(sample=meta, inspection=inspection, recipe=MAIZE))
    )
    assert report["schema_version"] == SCHEMA_VERSION == 2
    assert report["report"] == {"version": 1, "status": "original"}
    assert len(report["sample"]["model"]["sha256"]) == 64
    assert len(report["sample"]["model"]["confusion"]) == len(MAIZE.classes)
    assert report["sample"]["mass_model"]["exponent"] == MAIZE.mass_exponent
    summary = report["summary"]
    assert summary["n_seeds"] == len(report["seeds"]) == sum(summary["counts"].values())
    assert 0 <= summary["purity_by_count"]["value_pct"] <= 100
    low, high = summary["purity_by_count"]["ci95_pct"]
    assert low <= summary["purity_by_count"]["value_pct"] <= high
    assert "purity_by_weight_pct" in summary
    assert "value_pct" in summary["purity_corrected"]
    assert "not an ISTA purity test" in summary["statement"]
    unseen = [s for s in report["seeds"] if s["bottom"] is None]
    assert all("bottom_only" not in s["flags"] for s in unseen)
    for seed in report["seeds"]:
        assert set(seed) >= {"fused_class", "top", "bottom", "flags"}


def test_cancelling_stops_the_inspection(samples, calibration, classifier):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(InspectionCancelled):
        analyse(_capture(samples[0]), calibration, classifier=classifier, cancel=cancel)


def test_a_frame_of_another_size_is_rejected(samples, calibration):
    scene = samples[0]
    small = type(scene)(
        scene.kind,
        {v: im[:1000, :1000].copy() for v, im in scene.images.items()},
        None,
        0,
    )
    with pytest.raises(FrameRejected, match="recalibrate"):
        analyse(_capture(small), calibration)


def test_an_overexposed_frame_is_rejected_naming_the_camera(samples, calibration):
    scene = samples[0]
    white = {
        "top": np.full_like(scene.images["top"], 255),
        "bottom": scene.images["bottom"],
    }
    with pytest.raises(FrameRejected, match="SIM-TOP.*overexposed"):
        analyse(_capture(type(scene)("sample", white, None, 0)), calibration)


@pytest.fixture
def stored(data_dir, calibration, classifier):
    settings = Settings.load()
    db = Database.open(settings.database_url)
    images = ImageStore(settings.images_dir)
    handle = open_rig("simulated", seed=5, spec=SampleSpec(n_kernels=60))
    info = SampleInfo.create(lot="LOT-1", code="S-1", recipe="maize", operator="Ann")
    steps = []
    sample = capture_sample(
        handle,
        (None, calibration),
        db,
        images,
        info,
        classifier=classifier,
        recipe=MAIZE,
        progress=lambda step, f: steps.append((step, f)),
    )
    yield db, images, sample, steps
    handle.close()
    db.close()


def test_a_captured_sample_is_stored_whole(stored):
    db, images, sample, steps = stored
    record = get_sample(db, sample.id)
    assert len(record.seeds) == sample.report["summary"]["n_seeds"]
    assert {s.fused_class for s in record.seeds} <= set(MAIZE.classes)
    assert all(images.verify(c.image_sha256) for c in record.captures)
    fractions = [f for _, f in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [s.id for s in list_samples(db)] == [sample.id]


def test_exports_load_back(stored, tmp_path):
    db, images, sample, _ = stored
    as_json = export_sample(db, images, sample.id, fmt="json", out=tmp_path / "r.json")
    report = json.loads(as_json.read_text())
    assert report["sample"]["id"] == sample.id
    assert report["summary"] == json.loads(json.dumps(sample.report["summary"]))
    as_csv = export_sample(db, images, sample.id, fmt="csv", out=tmp_path / "r.csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.read_text())))
    assert len(rows) == len(report["seeds"])
    assert {r["fused_class"] for r in rows} <= set(MAIZE.classes)
    as_pdf = export_sample(db, images, sample.id, fmt="pdf", out=tmp_path / "r.pdf")
    assert as_pdf.read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize("text", ["=SUM(A1)", "+1", "-2", "@cmd"])
def test_csv_cells_never_start_a_formula(text):
    assert safe_cell(text).startswith("'")
    assert safe_cell("LOT-1") == "LOT-1"


def _region(flags=()):
    from appliance.segmentation import SeedRegion

    return SeedRegion(
        1,
        (0, 0, 2, 2),
        np.ones((2, 2), bool),
        4,
        (1.0, 1.0),
        2.0,
        1.0,
        0.0,
        tuple(flags),
    )


def test_a_view_cut_by_the_border_does_not_decide_when_the_other_is_whole():
    from appliance.inspection import SeedObservation, trusted_views
    from appliance.matching import SeedPair

    seed = SeedObservation(1, SeedPair(_region(["border"]), _region(), 1.0), 10.0, ())
    found = {"top": np.array([0.1, 0.9, 0, 0]), "bottom": np.array([0.9, 0.1, 0, 0])}
    assert set(trusted_views(seed, found)) == {"bottom"}
    both_cut = SeedObservation(
        1, SeedPair(_region(["border"]), _region(["border"]), 1.0), 10.0, ()
    )
    assert set(trusted_views(both_cut, found)) == {"top", "bottom"}
