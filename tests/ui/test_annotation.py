import sys

import numpy as np
import pytest
from PyQt6.QtCore import Qt

from appliance.store import (
    Database,
    ImageStore,
    ItemInput,
    create_round,
    get_round,
    record_accuracy,
    sqlite_url,
    training_labels,
)
from ui.annotation import AnnotationScreen
from ui.annotation_model import AnnotationBatch

CLASSES = ("pure", "broken", "discolored", "silkcut")


@pytest.fixture
def labelling_round(tmp_path):
    url = sqlite_url(tmp_path / "seedqa.db")
    images = ImageStore(tmp_path / "images")
    rng = np.random.default_rng(0)
    items = [
        ItemInput(
            top_crop_sha256=images.put_image(
                rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            ),
            bottom_crop_sha256=images.put_image(
                rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            ),
            score=1.0 - 0.1 * n,
            suggested_class="pure",
            probabilities=(0.7, 0.1, 0.1, 0.1),
            seed_id=None,
            source=f"/plate/seed-{n}.png",
        )
        for n in range(6)
    ]
    with Database.open(url) as db:
        round_id = create_round(
            db,
            strategy="batchbald",
            model_name="maize-sim v1",
            model_sha256="0" * 64,
            pool="test plate",
            classes=CLASSES,
            params={"batch": 6},
            items=items,
        )
    return url, tmp_path / "images", round_id


def _screen(qtbot, url, images_dir, **kwargs):
    screen = AnnotationScreen(url, images_dir, columns=3, **kwargs)
    qtbot.addWidget(screen)
    screen.show()
    with qtbot.waitSignal(screen.round_loaded, timeout=30_000):
        screen.load_round(None)
    return screen


def test_keys_relabel_and_submit_stores_the_labels_and_who_gave_them(
    qtbot, labelling_round
):
    url, images_dir, round_id = labelling_round
    screen = _screen(qtbot, url, images_dir, annotator="A. Expert")
    assert len(screen.tiles) == 6

    qtbot.keyClick(screen, Qt.Key.Key_2)  # seed 0 -> broken, cursor to seed 1
    qtbot.keyClick(screen, Qt.Key.Key_Right)  # skip seed 1 (stays pure)
    qtbot.keyClick(screen, Qt.Key.Key_4)  # seed 2 -> silkcut
    qtbot.keyClick(screen, Qt.Key.Key_Down)  # seed 3 -> seed 5 (one row down)
    qtbot.keyClick(screen, Qt.Key.Key_3)  # seed 5 -> discolored
    assert screen.batch.changed == {0, 2, 5}
    assert screen.tiles[0].text.text() == "broken *"

    with qtbot.waitSignal(screen.submitted, timeout=30_000) as submitted:
        screen.submit()
    assert submitted.args == [round_id, 6]

    with Database.open(url) as db:
        stored = get_round(db, round_id)
        labels = training_labels(db)
    assert [i.label for i in stored.items] == [
        "broken",
        "pure",
        "silkcut",
        "pure",
        "pure",
        "discolored",
    ]
    assert stored.status == "submitted"
    assert stored.labelled_by == "A. Expert"
    assert stored.seconds_spent is not None and stored.seconds_spent >= 0
    assert {r.labelled_by for r in labels} == {"A. Expert"}
    assert len(labels) == 6


def test_click_selects_a_seed_and_the_class_button_relabels_it(qtbot, labelling_round):
    url, images_dir, _ = labelling_round
    screen = _screen(qtbot, url, images_dir, annotator="B")
    qtbot.mouseClick(screen.tiles[4], Qt.MouseButton.LeftButton)
    assert screen.batch.cursor == 4
    button = screen.class_bar.itemAt(1).widget()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert screen.batch.labels[4] == "broken"
    assert screen.batch.changed == {4}


def test_submit_without_a_name_stores_nothing(qtbot, labelling_round):
    url, images_dir, round_id = labelling_round
    screen = _screen(qtbot, url, images_dir)
    screen.submit()
    assert "your name" in screen.status.text()
    with Database.open(url) as db:
        assert get_round(db, round_id).status == "open"


def test_round_accuracies_are_plotted(qtbot, labelling_round):
    url, images_dir, round_id = labelling_round
    with Database.open(url) as db:
        record_accuracy(db, round_id, 0.74, model_sha256="1" * 64)
    screen = _screen(qtbot, url, images_dir)
    with qtbot.waitSignal(screen.history_loaded, timeout=30_000):
        screen.refresh_history()
    assert screen.plot.points == [(round_id, 0.74)]


def test_retrain_runs_a_separate_process_and_follows_its_epochs(qtbot, labelling_round):
    url, images_dir, _ = labelling_round
    screen = _screen(qtbot, url, images_dir)
    # The real builder needs minutes here; a stand-in process prints its progress
    # lines the same way, which is what the screen reads.
    script = (
        "import sys\n"
        "for e in (1, 2, 3):\n"
        "    print(f'epoch {e}/3: 100%', file=sys.stderr, flush=True)\n"
    )
    screen.retrain_command = lambda: [sys.executable, "-c", script]
    values = []
    screen.progress.valueChanged.connect(values.append)
    with qtbot.waitSignal(screen.retrain_finished, timeout=60_000) as finished:
        screen.retrain()
    assert finished.args == [0]
    assert screen.progress.maximum() == 1 and screen.progress.value() == 1
    assert max(values) >= 1


def test_retrain_command_trains_from_the_database_and_records_the_round(
    qtbot, labelling_round
):
    url, images_dir, round_id = labelling_round
    screen = _screen(qtbot, url, images_dir, retrain_args=["--epochs", "2"])
    command = screen.retrain_command()
    assert command[1:6] == ["-m", "models.cli", "classifier", "train", "--from-db"]
    assert command[command.index("--round") + 1] == str(round_id)
    assert command[-2:] == ["--epochs", "2"]


def test_batch_keys_follow_the_class_order_and_the_cursor_stays_inside():
    batch = AnnotationBatch(CLASSES, ["pure"] * 3, columns=2)
    assert batch.press("4") and batch.labels[0] == "silkcut"
    assert not batch.press("x")
    batch.move(10)
    assert batch.cursor == 2
    batch.move_rows(-5)
    assert batch.cursor == 0
