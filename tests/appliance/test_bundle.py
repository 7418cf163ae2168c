import json
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from appliance.bundle import BundleError, BundleInfo, load_bundle, save_bundle
from appliance.classifier import SeedClassifier


def _info(**changes):
    base = dict(
        architecture="resnet18",
        classes=("pure", "broken"),
        pure_classes=("pure",),
        input_size=32,
        mean=(0.5, 0.5, 0.5),
        std=(0.2, 0.2, 0.2),
    )
    base.update(changes)
    return BundleInfo(**base)


def test_a_bundle_round_trips_with_its_description(untrained_bundle):
    bundle = load_bundle(untrained_bundle)
    assert bundle.info.classes == ("pure", "broken", "discolored", "silkcut")
    assert bundle.info.pure_classes == ("pure",)
    assert bundle.info.metrics["confusion"][0][0] == 90
    assert len(bundle.sha256) == 64


def test_changed_weights_are_refused(untrained_bundle, tmp_path):
    data = bytearray(untrained_bundle.read_bytes())
    data[-100] ^= 0xFF  # one byte of the last tensor
    path = tmp_path / "changed.safetensors"
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="SHA-256"):
        load_bundle(path)


def test_changed_metadata_is_refused(untrained_bundle, tmp_path):
    raw = untrained_bundle.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["seedqa.bundle"])
    meta["classes"] = ["pure", "broken", "discolored"]  # one class dropped
    header["__metadata__"]["seedqa.bundle"] = json.dumps(meta)
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    path = tmp_path / "edited.safetensors"
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])
    with pytest.raises(BundleError):
        SeedClassifier(load_bundle(path))


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(path))
    with pytest.raises(BundleError, match="not a seedqa model bundle"):
        load_bundle(path)


def test_a_pickle_is_never_loaded(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(3)}, path)
    with pytest.raises(BundleError, match="not a safetensors"):
        load_bundle(path)


def test_a_truncated_file_is_refused(untrained_bundle, tmp_path):
    path = tmp_path / "short.safetensors"
    path.write_bytes(untrained_bundle.read_bytes()[:5000])
    with pytest.raises(BundleError):
        load_bundle(path)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(BundleError, match="cannot read"):
        load_bundle(tmp_path / "nothing.safetensors")


@pytest.mark.parametrize(
    "changes",
    [
        {"architecture": "vgg"},
        {"classes": ("pure",)},
        {"pure_classes": ("healthy",)},
        {"input_size": 4},
        {"std": (0.0, 1.0, 1.0)},
        {"metrics": {"confusion": [[1, 2, 3]]}},
        {"numeric_format": "fp16"},
        {"test_time_flips": ("transpose",)},
        {"test_time_flips": ("hflip", "hflip")},
    ],
)
def test_inconsistent_descriptions_are_refused(changes):
    with pytest.raises(BundleError):
        _info(**changes)


def test_weights_of_another_shape_are_refused(tmp_path):
    info = _info()
    path = tmp_path / "wrong.safetensors"
    save_bundle(path, info, {"fc.weight": torch.zeros(2, 7)})
    with pytest.raises(BundleError, match="do not fit"):
        SeedClassifier(load_bundle(path))


def test_predictions_do_not_depend_on_the_batch_size(untrained_bundle):
    bundle = load_bundle(untrained_bundle)
    crops = np.random.default_rng(1).integers(0, 255, (37, 32, 32, 3), dtype=np.uint8)
    small = SeedClassifier(bundle, numeric="fp32", batch_size=5).predict(crops)
    large = SeedClassifier(bundle, numeric="fp32", batch_size=64).predict(crops)
    assert small.shape == (37, 4)
    assert np.allclose(small.sum(axis=1), 1, atol=1e-5)
    assert np.allclose(small, large, atol=1e-5)


def test_int8_inference_follows_fp32(untrained_bundle):
    bundle = load_bundle(untrained_bundle)
    crops = np.random.default_rng(2).integers(0, 255, (16, 32, 32, 3), dtype=np.uint8)
    fp32 = SeedClassifier(bundle, numeric="fp32").predict(crops)
    int8 = SeedClassifier(bundle, numeric="int8").predict(crops)
    assert np.abs(fp32 - int8).max() < 0.1


def test_crops_of_the_wrong_size_are_refused(untrained_bundle):
    classifier = SeedClassifier(load_bundle(untrained_bundle), numeric="fp32")
    with pytest.raises(ValueError, match="expected crops"):
        classifier.predict(np.zeros((2, 64, 64, 3), np.uint8))


def test_test_time_flips_round_trip_through_the_description():
    info = _info(test_time_flips=("rot180",))
    assert BundleInfo.from_json(info.to_json()).test_time_flips == ("rot180",)
    older = {k: v for k, v in info.to_json().items() if k != "test_time_flips"}
    assert BundleInfo.from_json(older).test_time_flips == ()


def test_flipped_copies_are_averaged_with_the_crop(untrained_bundle):
    bundle = load_bundle(untrained_bundle)
    crops = np.random.default_rng(3).integers(0, 255, (9, 32, 32, 3), dtype=np.uint8)
    plain = SeedClassifier(bundle, numeric="fp32", flips=())
    turned = plain.predict(np.ascontiguousarray(crops[:, ::-1, ::-1]))
    both = SeedClassifier(bundle, numeric="fp32", flips=("rot180",), batch_size=4)
    expected = (plain.predict(crops) + turned) / 2
    assert np.allclose(both.predict(crops), expected, atol=1e-5)
    assert not np.allclose(turned, plain.predict(crops), atol=1e-3)


def test_unknown_flips_are_refused(untrained_bundle):
    with pytest.raises(ValueError, match="test-time flips"):
        SeedClassifier(load_bundle(untrained_bundle), flips=("transpose",))
