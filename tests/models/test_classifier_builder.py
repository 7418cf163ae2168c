import json
import sys

import cv2
import numpy as np
import pytest
import torch

from appliance.bundle import load_bundle
from models.classifier.data import (
    CropSet,
    DatasetError,
    folder_crops,
    simulated_crops,
    split_by_group,
)
from models.classifier.metrics import classification_report, cohen_kappa
from models.classifier.train import (
    TrainConfig,
    class_loss_weights,
    init_network,
    make_info,
    train,
)
from models.cli import main


def test_kappa_matches_a_worked_example():
    # 2x2 example: observed 0.7, expected 0.5 -> kappa 0.4
    assert cohen_kappa(np.array([[20, 5], [10, 15]])) == pytest.approx(0.4)
    assert cohen_kappa(np.diag([5, 5, 5])) == pytest.approx(1.0)


def test_report_handles_a_folder_with_a_subset_of_the_classes():
    truth = np.array([0, 0, 2, 2, 2])
    pred = np.array([0, 1, 2, 2, 0])
    report = classification_report(
        truth, pred, ("pure", "broken", "silkcut"), ("pure",)
    )
    assert report["per_class_recall"]["broken"] is None
    assert report["balanced_accuracy"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert report["accuracy"] == pytest.approx(0.6)
    assert report["pure_vs_impure_accuracy"] == pytest.approx(0.6)
    assert report["confusion"][0] == [1, 1, 0]


def test_simulated_views_are_labelled_by_what_they_show():
    data = simulated_crops(1, size=32, seed=3, kernels_per_sample=40)
    assert data.crops.shape[1:] == (32, 32, 3)
    assert len(data) >= 60
    # A kernel whose defect is on one face gives a defect crop and a pure crop.
    by_kernel: dict[int, set] = {}
    for k, label, true in zip(data.kernels, data.labels, data.truth, strict=True):
        by_kernel.setdefault(int(k), set()).add((int(label), int(true)))
    mixed = [v for v in by_kernel.values() if len({lab for lab, _ in v}) == 2]
    assert mixed and all(0 in {lab for lab, _ in v} for v in mixed)


def _folder(root, counts):
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            img = np.zeros((50, 40, 3), np.uint8)
            colour = (200, 150, 40) if name == "grain" else (90, 60, 30)
            cv2.ellipse(
                img, (20, 25), (12, 20), float(rng.uniform(0, 180)), 0, 360, colour, -1
            )
            cv2.imwrite(str(root / name / f"{i}.png"), img)


def test_image_folders_are_read_in_the_model_class_order(tmp_path):
    _folder(tmp_path, {"grain": 4, "grain_broken": 3})
    data = folder_crops(
        tmp_path,
        size=32,
        ready=True,
        classes=("damaged_grain", "grain", "grain_broken"),
    )
    assert data.classes == ("damaged_grain", "grain", "grain_broken")
    assert sorted(data.labels.tolist()) == [1, 1, 1, 1, 2, 2, 2]
    assert data.crops.shape == (7, 32, 32, 3)
    assert data.crops[:, 0, 0].max() == 0  # black around the seed


def test_folders_with_unknown_classes_are_refused(tmp_path):
    _folder(tmp_path, {"weed": 2})
    with pytest.raises(DatasetError, match="weed"):
        folder_crops(tmp_path, size=32, ready=True, classes=("grain",))
    with pytest.raises(DatasetError, match="does not exist"):
        folder_crops(tmp_path / "missing", size=32)


def test_splits_keep_each_sample_on_one_side():
    n = 60
    data = CropSet(
        np.zeros((n, 8, 8, 3), np.uint8),
        np.arange(n) % 3,
        ("a", "b", "c"),
        np.arange(n) // 10,
        np.full(n, -1),
        np.arange(n) % 3,
        source={"kind": "simulated"},
    )
    train_idx, held = split_by_group(data, fraction=0.2, seed=0)
    assert set(data.groups[train_idx]).isdisjoint(data.groups[held])
    assert len(train_idx) + len(held) == n


def _tiny(seed=0):
    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 255, (48, 32, 32, 3), dtype=np.uint8)
    labels = (crops.mean(axis=(1, 2, 3)) > 127).astype(np.int64)
    return crops, labels


def test_resuming_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    crops, labels = _tiny()
    info = make_info(("a", "b"), ("a",), 32)
    config = TrainConfig(epochs=2, batch_size=16, seed=4)

    whole = init_network(info, seed=4)
    train(
        whole, info, crops, labels, crops[:8], labels[:8], config, show_progress=False
    )

    ckpt = tmp_path / "run.checkpoint"
    first = init_network(info, seed=4)
    with pytest.raises(_Stop):  # the run is interrupted after its first epoch
        train(
            first,
            info,
            crops,
            labels,
            crops[:8],
            labels[:8],
            config,
            checkpoint=ckpt,
            show_progress=False,
            on_epoch=lambda e, h: _stop_after(e, 1),
        )
    resumed = init_network(info, seed=99)  # different start: all state comes from disk
    history = train(
        resumed,
        info,
        crops,
        labels,
        crops[:8],
        labels[:8],
        config,
        checkpoint=ckpt,
        resume=True,
        show_progress=False,
    )
    assert len(history.train_loss) == 2
    for (name, a), b in zip(
        whole.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name


class _Stop(Exception):
    pass


def _stop_after(epoch, n):
    if epoch >= n:
        raise _Stop


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path):
    crops, labels = _tiny()
    info = make_info(("a", "b"), ("a",), 32)
    ckpt = tmp_path / "c.checkpoint"
    net = init_network(info, seed=0)
    train(
        net,
        info,
        crops,
        labels,
        crops[:8],
        labels[:8],
        TrainConfig(epochs=1, batch_size=16),
        checkpoint=ckpt,
        show_progress=False,
    )
    with pytest.raises(ValueError, match="another configuration"):
        train(
            net,
            info,
            crops,
            labels,
            crops[:8],
            labels[:8],
            TrainConfig(epochs=1, batch_size=32),
            checkpoint=ckpt,
            resume=True,
            show_progress=False,
        )


def test_train_and_eval_from_the_command_line(tmp_path, capsys):
    data = tmp_path / "data"
    _folder(data, {"grain": 12, "grain_broken": 12})
    bundle = tmp_path / "w.safetensors"
    assert (
        main(
            [
                "classifier",
                "train",
                "--data",
                str(data),
                "--ready-crops",
                "--size",
                "32",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--out",
                str(bundle),
            ]
        )
        == 0
    )
    assert bundle.exists()
    assert bundle.with_suffix(".curves.png").exists()
    assert bundle.with_suffix(".confusion.png").exists()
    info = load_bundle(bundle).info
    assert info.pure_classes == ("grain",)
    tried = info.metrics["accuracy_by_flips"]
    assert set(tried) == {"none", "rot180", "vflip", "hflip"}  # at most one flip
    chosen = "+".join(info.test_time_flips) or "none"
    assert tried[chosen] == max(tried.values())
    assert "test-time flips" in capsys.readouterr().out
    assert (
        main(
            [
                "classifier",
                "eval",
                "--model",
                str(bundle),
                "--data",
                str(data),
                "--ready-crops",
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert {
        "classes",
        "confusion",
        "accuracy",
        "balanced_accuracy",
        "pure_vs_impure_accuracy",
        "kappa",
    } <= set(report)
    assert sum(map(sum, report["confusion"])) == 24


def test_eval_of_a_missing_bundle_exits_2(tmp_path, capsys):
    assert (
        main(
            [
                "classifier",
                "eval",
                "--model",
                str(tmp_path / "x.safetensors"),
                "--data",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_imagenet_weights_come_from_a_local_file(tmp_path, suffix):
    from safetensors.torch import save_file
    from torchvision.models import resnet18

    imagenet = resnet18(weights=None, num_classes=1000).state_dict()
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in imagenet.items()}, str(path))
    else:
        torch.save(imagenet, path)
    info = make_info(("a", "b"), ("a",), 32)
    net = init_network(info, seed=0, init_weights=path)
    state = net.state_dict()
    assert torch.equal(state["conv1.weight"], imagenet["conv1.weight"])
    assert state["fc.weight"].shape == (2, 512)


def test_a_file_that_is_not_a_resnet18_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(3, 3)}, str(path))
    with pytest.raises(ValueError, match="not a ResNet18"):
        init_network(make_info(("a", "b"), ("a",), 32), seed=0, init_weights=path)


def test_class_weights_are_inverse_to_frequency_with_mean_one_per_crop():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    weights = class_loss_weights(labels, 4)
    assert weights[3] == 0.0  # absent class
    assert weights[0] * 6 == pytest.approx(weights[1] * 3) == weights[2] * 1
    assert weights[labels].mean() == pytest.approx(1.0)


def test_class_weighted_training_changes_the_weights_and_epoch_crops_the_steps():
    crops, labels = _tiny()
    labels = labels.copy()
    labels[: len(labels) * 3 // 4] = 0  # imbalanced: three quarters class a
    info = make_info(("a", "b"), ("a",), 32)
    empty = np.zeros((0, 32, 32, 3), np.uint8), np.zeros(0, np.int64)
    nets = {}
    for weighted in (False, True):
        config = TrainConfig(
            epochs=1, batch_size=8, seed=1, class_weighted=weighted, epoch_crops=16
        )
        nets[weighted] = init_network(info, seed=1)
        train(nets[weighted], info, crops, labels, *empty, config, show_progress=False)
    assert not torch.equal(nets[False].fc.weight, nets[True].fc.weight)
    with pytest.raises(ValueError, match="epoch_crops"):
        train(
            init_network(info, seed=1),
            info,
            crops,
            labels,
            *empty,
            TrainConfig(epochs=1, epoch_crops=len(labels) + 1),
            show_progress=False,
        )


def _redness_network():
    """Says "broken" for red crops and "pure" for dark ones."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 2, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    )
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].bias.zero_()
        net[0].weight[0, 0] = -10.0
        net[0].weight[1, 0] = 10.0
    return net.eval()


def test_fused_confusion_counts_each_seed_once_with_the_appliance_fusion():
    from models.classifier.build import fused_confusion

    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    dark = np.zeros((16, 16, 3), np.uint8)
    # (kernel, view, crop, the seed's true class): a defect seen from one side, a
    # pure seed, a defect neither side shows, and a seed seen from the top only.
    rows = [
        (1, "top", red, 1),
        (1, "bottom", dark, 1),
        (2, "top", dark, 0),
        (2, "bottom", dark, 0),
        (3, "top", dark, 1),
        (3, "bottom", dark, 1),
        (4, "top", red, 1),
    ]
    crops = np.stack([r[2] for r in rows])
    truth = np.array([r[3] for r in rows])
    val = CropSet(
        crops,
        truth,
        ("pure", "broken"),
        np.zeros(len(rows), np.int64),
        np.array([r[0] for r in rows]),
        truth,
        tuple(r[1] for r in rows),
    )
    info = make_info(("pure", "broken"), ("pure",), 16)

    matrix = fused_confusion(_redness_network(), info, val, ())

    assert matrix == [[1, 0], [1, 2]]
    folder = CropSet(crops, truth, ("pure", "broken"), truth, np.full(7, -1), truth)
    assert fused_confusion(_redness_network(), info, folder, ()) is None


def test_purity_is_corrected_with_the_fused_confusion_where_the_build_measured_it():
    info = make_info(
        ("pure", "broken"),
        ("pure",),
        16,
        metrics={"confusion": [[9, 1], [2, 8]], "fused_confusion": [[5, 0], [1, 4]]},
    )
    assert info.purity_confusion == [[5, 0], [1, 4]]
    per_view = make_info(
        ("pure", "broken"), ("pure",), 16, metrics={"confusion": [[9, 1], [2, 8]]}
    )
    assert per_view.purity_confusion == [[9, 1], [2, 8]]
    from appliance.bundle import BundleError

    with pytest.raises(BundleError, match="fused_confusion matrix"):
        make_info(("pure", "broken"), ("pure",), 16, metrics={"fused_confusion": [[1]]})


def test_light_jitter_scales_the_colour_changes_and_leaves_the_geometry():
    from models.classifier.train import augment

    batch = np.zeros((64, 32, 32, 3), np.uint8)
    cv2.circle(batch[0], (16, 16), 10, (150, 110, 70), -1)
    batch[:] = batch[0]

    def centre_shift(light):
        out = augment(batch, torch.Generator().manual_seed(4), light=light)
        centre = out[:, 14:18, 14:18].reshape(len(out), -1, 3).mean(1)
        return out, np.abs(centre - (150, 110, 70)).mean()

    still, none = centre_shift(0.0)
    _, half = centre_shift(0.5)
    moved, full = centre_shift(1.0)
    assert none == 0.0
    assert full > 5.0
    assert 0.35 < half / full < 0.65
    # The same draws place the seed alike whatever the light does: only faint
    # edge pixels, darkened to black, can differ.
    differ = (still.max(axis=3) == 0) != (moved.max(axis=3) == 0)
    assert differ.mean() < 0.01
    assert still[differ].max() < 16


_FAULTS = """
import resource, sys, torch
from models.classifier.train import keep_freed_memory
kept = sys.argv[1] == "kept" and keep_freed_memory()
for _ in range(3):  # 40 MB blocks, above the largest threshold glibc sets itself
    torch.empty(10 << 20).fill_(1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    torch.empty(10 << 20).fill_(1.0)
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_freed_training_memory_is_reused_without_page_faults():
    import subprocess

    def faults(mode):
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS, mode],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return out[0] == "True", int(out[1])

    # A fresh process each, since the setting holds for the rest of a process.
    kept, with_setting = faults("kept")
    _, without = faults("given back")
    assert kept
    # Given back to the kernel and taken anew, every block faults its 10240
    # pages in again; kept, none does.
    assert without >= 20 * 10240
    assert with_setting < 10240
