from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.autograd.functional import jacobian

from models.flow import FlowConfig, FlowModel, InvalidFlowShape, bits_per_dim
from models.flow.data import digits, held_out_split
from models.flow.model import COUPLINGS, MIXINGS, hidden_for, parameter_count
from models.flow.train import (
    FlowFileError,
    TrainConfig,
    auroc,
    evaluate_bits_per_dim,
    load_model,
    read_checkpoint,
    train_flow,
)

VARIANTS = [(m, c) for m in MIXINGS for c in COUPLINGS]


@pytest.fixture(autouse=True)
def _one_thread():
    # The tests share a small machine; one thread avoids oversubscription stalls.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(config: FlowConfig, seed: int = 0, dtype=torch.float32) -> FlowModel:
    torch.manual_seed(seed)
    model = FlowModel(config).to(dtype)
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(
        8, config.in_channels, config.size, config.size, generator=generator
    ).to(dtype)
    with torch.no_grad():
        model.encode(x - 0.5)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return model


@pytest.mark.parametrize(("mixing", "coupling"), VARIANTS)
def test_whole_model_decodes_what_it_encodes(mixing, coupling):
    config = FlowConfig(
        in_channels=3, size=16, levels=2, steps=2, hidden=8, mixing=mixing,
        coupling=coupling,
    )  # fmt: skip
    model = _model(config)
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1)) - 0.5

    with torch.no_grad():
        zs, logdet, log_prior = model.encode(x)
        back = model.decode(zs)
        slow = model.decode(zs, sequential=True)

    assert [z.shape[1:] for z in zs] == [(6, 8, 8), (24, 4, 4)]
    assert logdet.shape == log_prior.shape == (4,)
    assert (back - x).abs().max() < 1e-4
    assert (slow - x).abs().max() < 1e-4


@pytest.mark.parametrize("mixing", MIXINGS)
def test_model_log_determinant_equals_brute_force_jacobian(mixing):
    config = FlowConfig(
        in_channels=1, size=4, levels=2, steps=1, hidden=4, mixing=mixing,
        coupling="quad",
    )  # fmt: skip
    model = _model(config, seed=2, dtype=torch.float64)
    x = torch.rand(1, 1, 4, 4, dtype=torch.float64) - 0.5

    def latents(v):
        zs, _, _ = model.encode(v.reshape(1, 1, 4, 4))
        return torch.cat([z.reshape(-1) for z in zs])

    jac = jacobian(latents, x.reshape(-1))
    _, brute = torch.linalg.slogdet(jac)
    _, logdet, _ = model.encode(x)

    assert jac.shape == (16, 16)
    assert logdet.item() == pytest.approx(brute.item(), abs=1e-8)


def test_sampling_temperature_scales_the_latents():
    config = FlowConfig(in_channels=1, size=8, levels=2, steps=1, hidden=8)
    model = _model(config, seed=3)

    cold_a = model.sample(
        4, temperature=0.0, generator=torch.Generator().manual_seed(1)
    )
    cold_b = model.sample(
        4, temperature=0.0, generator=torch.Generator().manual_seed(2)
    )
    warm = model.sample(
        400, temperature=0.5, generator=torch.Generator().manual_seed(3)
    )
    with torch.no_grad():
        zs, _, _ = model.encode(warm)
        top = (zs[-1] - model.top_mean) / model.top_log_std.exp()

    assert cold_a.shape == (4, 1, 8, 8)
    torch.testing.assert_close(cold_a, cold_b)
    assert top.std().item() == pytest.approx(0.5, rel=0.05)


def test_bits_per_dim_count_the_discrete_code_length():
    # An untrained model is the identity up to actnorm and small weights: a
    # Gaussian of unit variance on [-0.5, 0.5) costs about 8 + 1.25 bits/dim.
    config = FlowConfig(in_channels=1, size=8, levels=1, steps=1, hidden=4)
    model = FlowModel(config)
    model.levels[0].steps[0].actnorm.initialised.fill_(True)
    images = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)

    bpd = bits_per_dim(model, images, torch.Generator().manual_seed(0))

    gaussian = 0.5 * np.log2(2 * np.pi) + (1 / 12 / 2) / np.log(2)
    assert bpd.shape == (64,)
    assert bpd.mean().item() == pytest.approx(8 + gaussian, abs=0.05)


def test_equal_parameter_count_across_variants():
    base = FlowConfig(in_channels=3, size=16, levels=2, steps=2, hidden=1)
    counts = {}
    for mixing, coupling in [
        ("glow", "affine"),
        ("emerging", "affine"),
        ("cinc", "quad"),
    ]:
        config = replace(base, mixing=mixing, coupling=coupling)
        config = replace(config, hidden=hidden_for(config, 50_000))
        with torch.device("meta"):
            counts[(mixing, coupling)] = parameter_count(FlowModel(config))

    assert all(abs(n - 50_000) < 0.02 * 50_000 for n in counts.values()), counts


def test_config_rejects_a_side_not_divisible_by_the_levels():
    with pytest.raises(InvalidFlowShape, match=r"side 20 .* 2 \*\* levels = 8"):
        FlowConfig(size=20, levels=3)
    with pytest.raises(ValueError, match="mixing must be one of"):
        FlowConfig(mixing="butterfly")  # type: ignore[arg-type]
    model = FlowModel(FlowConfig(in_channels=1, size=8, levels=1, steps=1, hidden=4))
    with pytest.raises(InvalidFlowShape, match=r"\(B, 1, 8, 8\).*\(2, 3, 8, 8\)"):
        model.encode(torch.zeros(2, 3, 8, 8))


@pytest.fixture(scope="module")
def small_digits():
    data = digits(size=8)
    train, held = held_out_split(len(data), fraction=0.2, seed=0)
    return data.images[train], data.images[held]


SMALL = FlowConfig(in_channels=1, size=8, levels=2, steps=2, hidden=16)


def test_training_lowers_held_out_bits_per_dim(small_digits, tmp_path):
    train_images, held = small_digits
    untrained = FlowModel(SMALL)
    untrained.encode(torch.rand(64, 1, 8, 8) - 0.5)

    result = train_flow(
        SMALL,
        train_images,
        TrainConfig(iterations=30, batch_size=32, lr=3e-3, warmup=5, seed=0),
        checkpoint=tmp_path / "digits.pt",
    )

    before = evaluate_bits_per_dim(untrained, held).mean()
    after = evaluate_bits_per_dim(result.model, held).mean()
    assert after < before - 0.5
    assert result.history[-1][0] == 30
    model, state = load_model(tmp_path / "digits.pt")
    assert state["step"] == 30
    np.testing.assert_allclose(evaluate_bits_per_dim(model, held).mean(), after)


def test_resumed_training_ends_where_an_uninterrupted_run_ends(small_digits, tmp_path):
    images = small_digits[0]
    budget = TrainConfig(
        iterations=6, batch_size=16, warmup=2, seed=4, checkpoint_every=3
    )
    straight = train_flow(SMALL, images, budget, checkpoint=tmp_path / "a.pt")
    train_flow(
        SMALL, images, replace(budget, iterations=3), checkpoint=tmp_path / "b.pt"
    )
    resumed = train_flow(
        SMALL, images, budget, checkpoint=tmp_path / "b.pt", resume=True
    )

    assert resumed.step == 6
    for (name, a), b in zip(
        straight.model.state_dict().items(),
        resumed.model.state_dict().values(),
        strict=True,
    ):
        torch.testing.assert_close(a, b, msg=name)


def test_a_file_that_is_not_a_flow_is_refused(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")

    with pytest.raises(FlowFileError, match="not a flow model file"):
        read_checkpoint(other)
    with pytest.raises(FlowFileError, match="not a flow model file"):
        read_checkpoint(junk)
    with pytest.raises(FlowFileError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")


def test_auroc_matches_a_worked_example():
    # 3 x 2 pairs; positives above negatives in 5 of 6, one tie counted half
    assert auroc(np.array([1.0, 2.0, 3.0]), np.array([3.0, 4.0])) == pytest.approx(
        5.5 / 6
    )
    assert auroc(np.array([0.0]), np.array([1.0])) == 1.0
    with pytest.raises(ValueError, match="both groups"):
        auroc(np.array([]), np.array([1.0]))
