import json

import cv2
import numpy as np
import pytest
import torch

from models.classifier.data import CropSet, DatasetError, folder_crops
from models.cli import main
from models.gan.augment import diff_augment
from models.gan.balance import write_balanced_folder
from models.gan.generator_file import GeneratorFileError, load_generator
from models.gan.network import Discriminator, GanShape, Generator
from models.gan.quality import kid, manifold_metrics
from models.gan.sampling import sample_class
from models.gan.train import GanConfig, train_gan

COLOURS = ((220, 50, 40), (50, 210, 40), (40, 60, 220))


def toy_seeds(size: int, per_class=(24, 24, 24), seed: int = 0):
    """Ellipses on black, one colour per class: an easy set to condition on."""
    rng = np.random.default_rng(seed)
    crops, labels = [], []
    for c, n in enumerate(per_class):
        for _ in range(n):
            img = np.zeros((size, size, 3), np.uint8)
            axes = (
                int(size * rng.uniform(0.18, 0.25)),
                int(size * rng.uniform(0.3, 0.4)),
            )
            cv2.ellipse(img, (size // 2, size // 2), axes, 0, 0, 360, COLOURS[c], -1)
            crops.append(img)
            labels.append(c)
    return np.stack(crops), np.array(labels, np.int64)


def colour_class(images: np.ndarray) -> np.ndarray:
    """The class whose colour channel dominates each image's bright pixels."""
    flat = images.reshape(len(images), -1, 3).astype(np.float64)
    bright = flat.max(axis=2, keepdims=True) > 60
    means = (flat * bright).sum(1) / np.maximum(bright.sum(1), 1)
    return means.argmax(axis=1)


TINY = GanConfig(size=16, channels=8, z_dim=24, embed_dim=16, batch_size=12)


@pytest.mark.parametrize("size", [16, 32, 64, 128])
def test_networks_map_noise_to_images_and_images_to_scores(size):
    torch.manual_seed(0)
    blocks = int(np.log2(size)) - 2
    shape = GanShape(n_classes=3, size=size, channels=4, z_dim=4 * (blocks + 1))
    g, d = Generator(shape), Discriminator(shape)
    y = torch.tensor([0, 1, 2])
    x = g(torch.randn(3, shape.z_dim), y)
    assert x.shape == (3, 3, size, size)
    assert float(x.detach().abs().max()) <= 1.0
    assert d(x, y).shape == (3,)


def test_a_shape_that_cannot_split_its_noise_is_refused():
    with pytest.raises(ValueError, match="split evenly"):
        GanShape(n_classes=2, size=64, z_dim=81)
    with pytest.raises(ValueError, match="one of"):
        GanShape(n_classes=2, size=48)


def test_the_discriminator_score_depends_on_the_class():
    torch.manual_seed(0)
    d = Discriminator(GanShape(3, 16, 4, 24, 8))
    x = torch.randn(2, 3, 16, 16)
    same = torch.tensor([0, 0])
    with torch.no_grad():
        assert not torch.allclose(d(x, same), d(x, torch.tensor([1, 1])))


def test_augmentation_keeps_shape_and_gradient_and_is_seeded():
    x = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_(True)
    policy = ("color", "translation", "cutout")
    a = diff_augment(x, policy, torch.Generator().manual_seed(3))
    b = diff_augment(x, policy, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b)
    a.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="unknown augmentation"):
        diff_augment(x, ("zoom",), torch.Generator())


def test_translation_moves_the_image_and_fills_black():
    x = -torch.ones(1, 1, 16, 16)
    x[0, 0, 8, 8] = 1.0
    moved = diff_augment(x, ("translation",), torch.Generator().manual_seed(5))
    assert float(moved.max()) == 1.0
    assert float(moved.min()) == -1.0
    assert int((moved == 1.0).sum()) == 1


@pytest.fixture(scope="module")
def toy_generator(tmp_path_factory):
    """A small generator trained briefly on the coloured toy seeds at 32 px."""
    crops, labels = toy_seeds(32, (40, 40, 40))
    out = tmp_path_factory.mktemp("gan")
    config = GanConfig(
        size=32,
        channels=8,
        z_dim=32,
        embed_dim=16,
        iterations=150,
        batch_size=16,
        lr_g=5e-4,
        lr_d=5e-4,
        ema_decay=0.99,
    )
    train_gan(
        crops,
        labels,
        ("red", "green", "blue"),
        config,
        out_dir=out,
        sample_every=75,
        show_progress=False,
    )
    return out / "generator.safetensors"


def test_generated_seeds_look_like_their_class(toy_generator):
    generator, info = load_generator(toy_generator)
    assert info.classes == ("red", "green", "blue")
    for c in range(3):
        images = sample_class(generator, c, 30, seed=1)
        accuracy = float(np.mean(colour_class(images) == c))
        assert accuracy > 0.8, (info.classes[c], accuracy)  # chance is 1/3


def test_training_writes_grids_and_a_checkpoint(toy_generator):
    out = toy_generator.parent
    grids = sorted((out / "samples").glob("step_*.png"))
    assert [g.name for g in grids] == ["step_000075.png", "step_000150.png"]
    image = cv2.imread(str(grids[-1]))
    assert image.shape[0] > 3 * 32  # one row per class
    assert (out / "checkpoint.safetensors").is_file()


def test_sampling_is_reproducible_from_a_seed(toy_generator):
    generator, _ = load_generator(toy_generator)
    a = sample_class(generator, 1, 10, seed=7)
    b = sample_class(load_generator(toy_generator)[0], 1, 10, seed=7)
    c = sample_class(generator, 1, 10, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # Batching does not change the images.
    assert np.array_equal(a, sample_class(generator, 1, 10, seed=7, batch_size=3))


def test_resumed_training_matches_an_uninterrupted_run(tmp_path):
    crops, labels = toy_seeds(16, (6, 6, 6))
    config = GanConfig(**{**TINY.__dict__, "iterations": 6})
    classes = ("red", "green", "blue")
    whole = train_gan(
        crops, labels, classes, config, out_dir=tmp_path / "a", show_progress=False
    )
    part = tmp_path / "b"
    train_gan(
        crops, labels, classes, config, out_dir=part, show_progress=False, stop_after=3
    )
    assert not (part / "generator.safetensors").exists()
    resumed = train_gan(
        crops, labels, classes, config, out_dir=part, resume=True, show_progress=False
    )
    assert resumed.step == whole.step == 6
    for a, b in (
        (whole.ema, resumed.ema),
        (whole.generator, resumed.generator),
        (whole.discriminator, resumed.discriminator),
    ):
        for (name, x), (_, y) in zip(
            a.state_dict().items(), b.state_dict().items(), strict=True
        ):
            assert torch.equal(x, y), name
    assert resumed.history.loss_d == whole.history.loss_d
    g1, _ = load_generator(tmp_path / "a" / "generator.safetensors")
    g2, _ = load_generator(part / "generator.safetensors")
    assert np.array_equal(
        sample_class(g1, 0, 4, seed=0), sample_class(g2, 0, 4, seed=0)
    )


def test_resuming_with_another_configuration_is_refused(tmp_path):
    crops, labels = toy_seeds(16, (4, 4, 4))
    classes = ("red", "green", "blue")
    config = GanConfig(**{**TINY.__dict__, "iterations": 2})
    train_gan(crops, labels, classes, config, out_dir=tmp_path, show_progress=False)
    other = GanConfig(**{**TINY.__dict__, "iterations": 2, "lr_d": 1e-3})
    with pytest.raises(ValueError, match="another configuration"):
        train_gan(
            crops,
            labels,
            classes,
            other,
            out_dir=tmp_path,
            resume=True,
            show_progress=False,
        )


def test_crops_of_the_wrong_size_or_an_empty_class_are_refused(tmp_path):
    crops, labels = toy_seeds(32, (2, 2, 0))
    with pytest.raises(ValueError, match="shape"):
        train_gan(crops, labels, ("r", "g", "b"), TINY, out_dir=tmp_path)
    crops, labels = toy_seeds(16, (2, 2, 0))
    with pytest.raises(ValueError, match=r"\['b'\]"):
        train_gan(crops, labels, ("r", "g", "b"), TINY, out_dir=tmp_path)


def test_a_file_that_is_not_a_generator_is_refused(tmp_path, untrained_bundle):
    with pytest.raises(GeneratorFileError, match="not a generator"):
        load_generator(untrained_bundle)
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(GeneratorFileError, match="not a safetensors"):
        load_generator(tmp_path / "junk.safetensors")


def test_kid_and_manifold_metrics_tell_like_from_unlike():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 16)).astype(np.float32)
    alike = rng.normal(size=(200, 16)).astype(np.float32)
    shifted = alike + 3.0
    kid_alike, _ = kid(real, alike)
    kid_shifted, _ = kid(real, shifted)
    assert abs(kid_alike) < 0.05 < kid_shifted
    same = manifold_metrics(real, real.copy())
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = manifold_metrics(real, shifted)
    assert far["precision"] < 0.1 and far["coverage"] < 0.1
    near = manifold_metrics(real, alike)
    assert near["precision"] > 0.8 and near["recall"] > 0.8


def _cropset(crops, labels, classes):
    n = len(labels)
    return CropSet(
        crops, labels, classes, np.arange(n), np.full(n, -1), labels, (), {"kind": "t"}
    )


def test_balance_writes_a_folder_the_classifier_reads(toy_generator, tmp_path):
    generator, info = load_generator(toy_generator)
    crops, labels = toy_seeds(32, (9, 4, 2))
    data = _cropset(crops, labels, info.classes)
    out = tmp_path / "balanced"
    manifest = write_balanced_folder(
        data, generator, info, out, generator_path=toy_generator, seed=3
    )
    assert manifest["counts"]["blue"] == {"real": 2, "generated": 7}
    assert manifest["counts"]["red"] == {"real": 9, "generated": 0}
    generated = [f for f in manifest["files"] if f["source"] == "generated"]
    assert len(generated) == 5 + 7
    assert all("/gan-3-" in f["file"] for f in generated)
    assert json.loads((out / "manifest.json").read_text()) == manifest
    read = folder_crops(out, size=32, ready=True, classes=info.classes)
    assert read.counts() == {"red": 9, "green": 9, "blue": 9}
    with pytest.raises(DatasetError, match="not empty"):
        write_balanced_folder(data, generator, info, out, generator_path=toy_generator)


def test_balance_refuses_classes_the_generator_does_not_know(toy_generator, tmp_path):
    generator, info = load_generator(toy_generator)
    crops, labels = toy_seeds(32, (3, 1, 0))
    data = _cropset(crops[:4], labels[:4], ("red", "violet", "blue"))
    with pytest.raises(DatasetError, match="violet"):
        write_balanced_folder(
            data,
            generator,
            info,
            tmp_path / "o",
            generator_path=toy_generator,
            classes=["violet"],
        )


def _write_folder(root, crops, labels, classes):
    for i, (crop, label) in enumerate(zip(crops, labels, strict=True)):
        (root / classes[label]).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / classes[label] / f"{i}.png"), crop[:, :, ::-1])


def test_the_command_line_trains_samples_and_balances(tmp_path, capsys):
    crops, labels = toy_seeds(16, (6, 3, 2))
    classes = ("red", "green", "blue")
    data = tmp_path / "data"
    _write_folder(data, crops, labels, classes)
    out = tmp_path / "gan"
    common = ["--data", str(data), "--ready-crops", "--size", "16"]
    assert (
        main(
            [
                "gan",
                "train",
                *common,
                "--out",
                str(out),
                "--iterations",
                "3",
                "--channels",
                "4",
                "--batch-size",
                "6",
            ]
        )
        == 0
    )
    generator = out / "generator.safetensors"
    assert generator.is_file()
    assert (
        main(
            [
                "gan",
                "sample",
                "--generator",
                str(generator),
                "--out",
                str(tmp_path / "s"),
                "--per-class",
                "2",
                "--classes",
                "blue",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "s" / "blue").iterdir()) == [
        "gan-0-000000.png",
        "gan-0-000001.png",
    ]
    assert (
        main(
            [
                "gan",
                "balance",
                *common,
                "--generator",
                str(generator),
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 0
    )
    assert "train on it" in capsys.readouterr().out
    assert len(list((tmp_path / "b" / "blue").glob("gan-*.png"))) == 4


def test_the_command_line_reports_a_missing_generator_in_one_line(tmp_path, capsys):
    code = main(
        [
            "gan",
            "sample",
            "--generator",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "s"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
