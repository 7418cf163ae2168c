from datetime import UTC, datetime

import cv2
import numpy as np

from appliance.segmentation import segment
from appliance.settings import Settings
from appliance.store import (
    CaptureInput,
    Database,
    ImageStore,
    get_round,
    list_rounds,
    save_sample,
    submit_labels,
)
from models.active.pool import database_pool, labelled_crops
from models.cli import main


def _plate(rng: np.random.Generator, n: int) -> np.ndarray:
    """A light plate with `n` dark, separate, elliptical seeds."""
    image = np.full((360, 480, 3), 225, np.uint8)
    for i in range(n):
        centre = (60 + 90 * (i % 5), 60 + 110 * (i // 5))
        axes = (int(rng.integers(14, 22)), int(rng.integers(8, 12)))
        colour = tuple(int(c) for c in rng.integers(60, 140, 3))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    return image


def _seed_folder(root, n: int, seed: int = 0):
    """Single seeds masked on black, as ready crops."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    for i in range(n):
        image = np.zeros((100, 100, 3), np.uint8)
        colour = tuple(int(c) for c in rng.integers(80, 255, 3))
        cv2.ellipse(
            image, (50, 50), (30, 15), float(rng.uniform(0, 180)), 0, 360, colour, -1
        )
        cv2.imwrite(str(root / f"seed-{i:02d}.png"), image)
    return root


def test_select_from_a_folder_stores_a_round_and_its_crops(
    data_dir, untrained_bundle, tmp_path, capsys
):
    pool = _seed_folder(tmp_path / "pool", 12)
    code = main(
        [
            "active",
            "select",
            "--pool",
            str(pool),
            "--model",
            str(untrained_bundle),
            "--batch",
            "4",
            "--ready-crops",
            "--draws",
            "8",
        ]
    )
    assert code == 0
    assert "labelling round 1: 4 seeds chosen" in capsys.readouterr().out
    settings = Settings.load()
    images = ImageStore(settings.images_dir)
    with Database.open(settings.database_url) as db:
        stored = get_round(db, 1)
    assert stored.strategy == "batchbald"
    assert len(stored.items) == 4
    assert len({i.source for i in stored.items}) == 4
    assert all(images.verify(i.top_crop_sha256) for i in stored.items)
    scores = [i.score for i in stored.items]
    assert scores == sorted(scores)  # cumulative BatchBALD scores grow

    # A second round never offers the same images again.
    assert (
        main(
            [
                "active",
                "select",
                "--pool",
                str(pool),
                "--model",
                str(untrained_bundle),
                "--batch",
                "8",
                "--ready-crops",
            ]
        )
        == 0
    )
    with Database.open(settings.database_url) as db:
        second = get_round(db, 2)
    assert not {i.source for i in second.items} & {i.source for i in stored.items}


def test_labels_become_training_data_with_who_labelled_them(
    data_dir, untrained_bundle, tmp_path, capsys
):
    pool = _seed_folder(tmp_path / "pool", 12, seed=1)
    assert (
        main(
            [
                "active",
                "select",
                "--pool",
                str(pool),
                "--model",
                str(untrained_bundle),
                "--batch",
                "12",
                "--ready-crops",
                "--strategy",
                "random",
            ]
        )
        == 0
    )
    settings = Settings.load()
    images = ImageStore(settings.images_dir)
    classes = ("pure", "broken", "discolored", "silkcut")
    with Database.open(settings.database_url) as db:
        labels = {p: classes[p % 2] for p in range(12)}
        submit_labels(db, 1, labels, labelled_by="A. Expert", seconds_spent=30.0)
        data = labelled_crops(db, images, classes)
    assert len(data) == 12
    assert data.counts() == {"pure": 6, "broken": 6, "discolored": 0, "silkcut": 0}
    assert data.source["labelled_by"] == ["A. Expert"]

    out = tmp_path / "retrained.safetensors"
    code = main(
        [
            "classifier",
            "train",
            "--from-db",
            "--out",
            str(out),
            "--size",
            "32",
            "--epochs",
            "1",
            "--round",
            "1",
        ]
    )
    assert code == 0
    assert out.is_file()
    with Database.open(settings.database_url) as db:
        (stored,) = list_rounds(db)
    assert stored.validation_accuracy is not None


def test_database_pool_cuts_both_views_of_each_stored_seed(tmp_path):
    rng = np.random.default_rng(3)
    top, bottom = _plate(rng, 10), _plate(rng, 10)
    seeds = []
    found = {v: segment(img).seeds for v, img in (("top", top), ("bottom", bottom))}
    for i, (a, b) in enumerate(zip(found["top"], found["bottom"], strict=False)):

        def box(r):
            r0, c0, r1, c1 = r.bbox
            return [c0, r0, c1 - c0, r1 - r0]

        seeds.append(
            {
                "index": i + 1,
                "top_bbox": box(a),
                "bottom_bbox": box(b),
                "fused_class": "pure",
            }
        )
    assert len(seeds) == 10
    images = ImageStore(tmp_path / "images")
    now = datetime.now(UTC)
    with Database.open(f"sqlite:///{tmp_path / 'seedqa.db'}") as db:
        save_sample(
            db,
            images,
            rig_name="bench",
            rig_kind="simulated",
            top_serial="T",
            bottom_serial="B",
            calibration_id=None,
            lot="L",
            code="S1",
            recipe="maize",
            operator="op",
            captured_at=now,
            captures=[
                CaptureInput("top", "T", top, now, 1000.0),
                CaptureInput("bottom", "B", bottom, now, 1000.0),
            ],
            seeds=seeds,
            summary=None,
        )
        pool = database_pool(db, images, size=32)
    assert len(pool) == 10
    assert pool.has_bottom.all()
    assert pool.top.shape == (10, 32, 32, 3)
    assert all(s is not None for s in pool.seed_ids)
    assert (pool.top.reshape(10, -1).max(1) > 0).all()


def test_select_without_seeds_left_is_a_user_error(data_dir, untrained_bundle, capsys):
    code = main(
        [
            "active",
            "select",
            "--pool",
            "db",
            "--model",
            str(untrained_bundle),
            "--batch",
            "5",
        ]
    )
    assert code == 2
    assert "no unlabelled seeds" in capsys.readouterr().err


def test_select_refuses_a_missing_folder(data_dir, untrained_bundle, tmp_path, capsys):
    code = main(
        [
            "active",
            "select",
            "--pool",
            str(tmp_path / "nowhere"),
            "--model",
            str(untrained_bundle),
            "--batch",
            "5",
        ]
    )
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
