import json

import cv2
import numpy as np
import pytest
import torch

from appliance.imageio import read_rgb
from models.cli import main
from models.flow.data import folder_images

TINY = ["--levels", "1", "--steps", "1", "--hidden", "8", "--batch-size", "16"]


@pytest.fixture(autouse=True)
def _one_thread():
    # The tests share a small machine; one thread avoids oversubscription stalls.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _seed_folder(root, seed=0):
    # Two kinds of objects masked on black: bright long grains and dark round
    # specks, as photographs of single seeds are.
    rng = np.random.default_rng(seed)
    for name, colour, axes in (
        ("grain", (200, 160, 90), (14, 6)),
        ("foreign_particles", (70, 70, 70), (8, 8)),
    ):
        folder = root / name
        folder.mkdir(parents=True)
        for k in range(12):
            image = np.zeros((48, 48, 3), np.uint8)
            jitter = tuple(int(a + rng.integers(-2, 3)) for a in axes)
            cv2.ellipse(image, (24, 24), jitter, int(rng.integers(0, 180)), 0, 360,
                        colour, -1)  # fmt: skip
            image = np.clip(image + rng.integers(0, 20, image.shape), 0, 255)
            cv2.imwrite(str(folder / f"{k}.png"), image.astype(np.uint8)[:, :, ::-1])
    return root


def test_flow_train_sample_and_score_digits(tmp_path, capsys):
    model = tmp_path / "digits.pt"
    grid = tmp_path / "grid.png"

    code = main(
        ["flow", "train", "--digits", "--size", "8", "--iterations", "4",
         "--out", str(model), *TINY]
    )  # fmt: skip
    assert code == 0
    assert "held-out bits/dim" in capsys.readouterr().out

    assert main(["flow", "sample", "--model", str(model), "-n", "9",
                 "--out", str(grid)]) == 0  # fmt: skip
    # 3 x 3 tiles of 8 px with 2 px gaps
    assert read_rgb(grid).shape == (32, 32, 3)

    capsys.readouterr()
    assert main(["flow", "bpd", "--digits", "--model", str(model), "--held-out",
                 "--json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == round(0.2 * 1797)
    assert 0 < report["bits_per_dim"] < 12


def test_flow_train_resumes_from_its_model_file(tmp_path, capsys):
    model = tmp_path / "digits.pt"
    args = ["flow", "train", "--digits", "--size", "8", "--out", str(model), *TINY]

    assert main([*args, "--iterations", "3"]) == 0
    assert main([*args, "--iterations", "5", "--resume"]) == 0

    assert "trained 5 steps" in capsys.readouterr().out


def test_novelty_auroc_on_a_seed_folder(tmp_path, capsys):
    root = _seed_folder(tmp_path / "seeds")
    model = tmp_path / "grain.pt"

    code = main(
        ["flow", "train", "--data", str(root), "--classes", "grain", "--size", "8",
         "--iterations", "30", "--lr", "3e-3", "--out", str(model), *TINY]
    )  # fmt: skip
    assert code == 0
    capsys.readouterr()
    score = ["flow", "bpd", "--data", str(root), "--model", str(model), "--held-out"]
    assert main([*score, "--against", "foreign_particles", "--json"]) == 0

    report = json.loads(capsys.readouterr().out)
    assert report["images"] == round(0.2 * 12)
    assert report["novel"]["images"] == 12
    assert 0.0 <= report["novel"]["auroc"] <= 1.0


def test_folder_images_are_upright_crops_channels_first(tmp_path):
    data = folder_images(_seed_folder(tmp_path / "seeds"), size=16)

    assert data.images.shape == (24, 3, 16, 16)
    assert data.classes == ("foreign_particles", "grain")
    assert data.of_classes(["grain"]).images.shape[0] == 12
    assert data.images[:, :, 8, 8].mean() > 50  # the seed fills the centre


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["flow", "sample", "--model", "{tmp}/missing.pt", "--out", "{tmp}/g.png"],
         "does not exist"),
        (["flow", "bpd", "--digits", "--model", "{tmp}/junk.pt"],
         "not a flow model file"),
        (["flow", "train", "--data", "{tmp}/nowhere", "--out", "{tmp}/m.pt"],
         "does not exist"),
        (["flow", "train", "--digits", "--size", "12", "--levels", "3",
          "--out", "{tmp}/m.pt"], "not divisible"),
    ],
)  # fmt: skip
def test_user_mistakes_exit_2_with_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "junk.pt").write_bytes(b"junk")
    argv = [a.format(tmp=tmp_path) for a in argv]

    assert main(argv) == 2

    err = capsys.readouterr().err.strip()
    assert message in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_flow_bench_times_every_variant_and_reports_ratios(capsys):
    argv = ["flow", "bench", "--images", "2", "--size", "8", "--levels", "1",
            "--steps", "1", "--hidden", "4", "--repeats", "1", "--json"]  # fmt: skip

    assert main(argv) == 0

    result = json.loads(capsys.readouterr().out)
    assert set(result["sampling_s"]) == {
        "glow+affine",
        "emerging+affine",
        "cinc+affine",
        "emerging+affine sequential",
        "cinc+affine sequential",
    }
    assert all(s > 0 for s in result["sampling_s"].values())
    assert result["ratios"]["cinc / glow sampling"] > 0
    assert result["setup"]["threads"] == 1
