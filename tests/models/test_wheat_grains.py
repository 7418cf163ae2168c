"""The real wheat grains, read in place; skipped where the data set is absent."""

from pathlib import Path

import numpy as np
import pytest

from appliance import recipes
from models.classifier.data import folder_crops

WHEAT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "wheat-grains"

pytestmark = pytest.mark.skipif(
    not WHEAT.is_dir(), reason=f"the wheat grains are not at {WHEAT}"
)


def test_real_grains_become_labelled_crops_that_show_them(tmp_path):
    recipe = recipes.get("wheat")
    picked = {}
    for name in recipe.classes:
        (tmp_path / name).mkdir()
        # The largest files: a few photographs in the set are too small to use.
        images = sorted(
            (WHEAT / name).glob("*.jpg"), key=lambda f: (-f.stat().st_size, f.name)
        )[:4]
        for image in images:  # links: the data set stays where it is
            (tmp_path / name / image.name).symlink_to(image)
        picked[name] = len(images)

    data = folder_crops(
        tmp_path,
        size=64,
        ready=True,
        classes=recipe.classes,
        side_px=recipe.build["crop_side_px"],
    )

    assert data.classes == recipe.classes
    assert data.counts() == picked
    assert all(picked.values())
    lit = (data.crops.max(axis=3) > 30).mean(axis=(1, 2))
    assert np.all(lit > 0.05)  # every crop shows its grain, none is the black mask
