"""Capturing a sample in two steps: measure first, store on acceptance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from appliance import recipes
from appliance.calibrations import calibrate_rig
from appliance.classifier import classifier_for
from appliance.samples import SampleInfo, capture_sample, inspect_sample, save_inspected
from appliance.settings import Settings
from appliance.store import Database, ImageStore, get_sample, list_samples
from tests.small_rig import open_small_rig


@pytest.fixture
def bench(data_dir):
    """A small rig, calibrated, with the store and the maize classifier."""
    settings = Settings.load()
    db = Database.open(settings.database_url)
    images = ImageStore(settings.images_dir)
    handle = open_small_rig(seed=5)
    calibration = calibrate_rig(handle, db, images, settings)
    recipe = recipes.get("maize")
    classifier = classifier_for(recipe, settings.models_dir)
    yield handle, calibration, db, images, recipe, classifier
    handle.close()
    db.close()


def _info(lot: str = "LOT-1", operator: str = "Ana Silva") -> SampleInfo:
    return SampleInfo.create(lot=lot, code="S-1", recipe="maize", operator=operator)


def test_an_inspected_sample_is_stored_only_when_saved(bench):
    handle, calibration, db, images, recipe, classifier = bench

    inspected = inspect_sample(
        handle, calibration, _info(), classifier=classifier, recipe=recipe
    )
    assert list_samples(db) == []

    stored = save_inspected(db, images, inspected)
    record = get_sample(db, stored.id)
    assert record.lot == "LOT-1"
    assert len(record.seeds) == inspected.report["summary"]["n_seeds"] > 0
    assert record.summary["summary"]["counts"] == inspected.report["summary"]["counts"]
    assert stored.report["sample"]["id"] == stored.id
    assert inspected.report["sample"]["id"] is None  # the pending report is not changed


def test_samples_are_listed_by_operator_recipe_and_date(bench):
    handle, calibration, db, images, recipe, classifier = bench
    for lot, operator in (("LOT-A", "Ana Silva"), ("LOT-B", "Ben Okafor")):
        capture_sample(
            handle,
            calibration,
            db,
            images,
            _info(lot, operator),
            classifier=classifier,
            recipe=recipe,
        )
    now = datetime.now(UTC)

    assert [s.lot for s in list_samples(db, operator="Ben Okafor")] == ["LOT-B"]
    assert len(list_samples(db, recipe="maize")) == 2
    assert list_samples(db, recipe="wheat") == []
    assert len(list_samples(db, since=now - timedelta(hours=1))) == 2
    assert list_samples(db, until=now - timedelta(hours=1)) == []
    with pytest.raises(ValueError, match="naive"):
        list_samples(db, since=datetime(2026, 1, 1))
