import pytest
import torch
from torch.autograd.functional import jacobian

from models.flow import CInCConv2d, InvalidFlowShape
from models.flow.convs import AutoregressiveConv2d, EmergingConv2d
from models.flow.layers import (
    ActNorm,
    AffineCoupling,
    InvertibleConv1x1,
    QuadCoupling,
    Split,
    Squeeze,
    gaussian_log_prob,
)

LAYERS = {
    "cinc k=1": lambda c: CInCConv2d(c, kernel_size=1),
    "cinc k=3": lambda c: CInCConv2d(c),
    "cinc k=5": lambda c: CInCConv2d(c, kernel_size=5),
    "autoregressive k=3": lambda c: AutoregressiveConv2d(c, 3),
    "emerging k=3": lambda c: EmergingConv2d(c, 3),
    "emerging k=5": lambda c: EmergingConv2d(c, 5),
    "glow 1x1": InvertibleConv1x1,
    "actnorm": ActNorm,
    "affine coupling": lambda c: AffineCoupling(c, hidden=8),
    "quad coupling": lambda c: QuadCoupling(c, hidden=8),
    "squeeze": lambda c: Squeeze(),
}


@pytest.fixture(autouse=True)
def _one_thread():
    # The tests share a small machine; one thread avoids oversubscription stalls.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _perturbed(layer: torch.nn.Module, seed: int, scale: float = 0.1):
    # Zero-initialised and identity-initialised layers would pass any test: move
    # every weight off its starting value.
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return layer


def _layer(name: str, channels: int, seed: int = 0, dtype=torch.float32):
    torch.manual_seed(seed)
    layer = LAYERS[name](channels).to(dtype)
    if isinstance(layer, ActNorm):
        generator = torch.Generator().manual_seed(seed + 1)
        layer.initialise(
            3 * torch.randn(16, channels, 4, 4, generator=generator, dtype=dtype) + 1
        )
    return _perturbed(layer, seed)


@pytest.mark.parametrize("name", LAYERS)
def test_every_layer_inverts_its_forward(name):
    layer = _layer(name, 8)
    x = torch.randn(3, 8, 6, 10, generator=torch.Generator().manual_seed(5))

    with torch.no_grad():
        y, logdet = layer(x)
        back = layer.inverse(y)

    assert logdet.shape == (3,)
    if name != "squeeze":
        assert (y - x).abs().max() > 1e-3
    assert (back - x).abs().max() < 1e-4


@pytest.mark.parametrize("name", [n for n in LAYERS if n != "squeeze"])
def test_log_determinant_equals_brute_force_jacobian(name):
    layer = _layer(name, 4, seed=1, dtype=torch.float64)
    x = torch.randn(2, 4, 3, 4, generator=torch.Generator().manual_seed(2))
    x = x.to(torch.float64)

    _, logdet = layer(x)
    for b in range(2):

        def single(v, b=b):
            batch = x.clone()
            batch[b] = v.reshape(x.shape[1:])
            return layer(batch)[0][b].reshape(-1)

        jac = jacobian(single, x[b].reshape(-1))
        sign, brute = torch.linalg.slogdet(jac)
        assert sign != 0
        assert logdet[b].item() == pytest.approx(brute.item(), abs=1e-8)
    assert logdet.abs().max() > 1e-3


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_cinc_jacobian_is_triangular_in_raster_order(kernel_size):
    conv = _perturbed(CInCConv2d(3, kernel_size).double(), seed=3)
    shape = (3, 4, 5)
    x = torch.randn(*shape, dtype=torch.float64)

    def raster(v):
        # v and the output ordered pixel by pixel, channels within a pixel
        image = v.reshape(shape[1], shape[2], shape[0]).permute(2, 0, 1)[None]
        return conv(image)[0][0].permute(1, 2, 0).reshape(-1)

    jac = jacobian(raster, x.permute(1, 2, 0).reshape(-1))

    assert torch.equal(torch.triu(jac, diagonal=1), torch.zeros_like(jac))
    assert torch.tril(jac, diagonal=-1).abs().max() > 1e-2
    expected = conv.log_diagonal.exp().repeat(shape[1] * shape[2])
    torch.testing.assert_close(torch.diagonal(jac), expected.detach())


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda: CInCConv2d(4), (2, 4, 7, 5)),
        (lambda: CInCConv2d(3, 5), (2, 3, 6, 9)),
        (lambda: CInCConv2d(6, 1), (1, 6, 4, 4)),
        (lambda: AutoregressiveConv2d(4, 3), (2, 4, 5, 8)),
        (lambda: AutoregressiveConv2d(2, 5), (2, 2, 7, 6)),
        (lambda: EmergingConv2d(4, 3), (3, 4, 6, 6)),
    ],
)
def test_wavefront_inverse_equals_sequential_reference(make, shape):
    torch.manual_seed(4)
    conv = _perturbed(make(), seed=4)
    y = torch.randn(*shape, generator=torch.Generator().manual_seed(6))

    with torch.no_grad():
        fast = conv.inverse(y)
        slow = conv.inverse_sequential(y)

    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    assert (conv(fast)[0] - y).abs().max() < 1e-4


def test_inverse_reuses_its_workspace_without_carrying_values_over():
    """Each input shape keeps a sheared buffer between calls: a second image, a
    changed weight and another batch size must all invert from scratch."""
    conv = _perturbed(CInCConv2d(4), seed=1)
    first = torch.randn(3, 4, 6, 7, generator=torch.Generator().manual_seed(1))
    second = torch.randn(3, 4, 6, 7, generator=torch.Generator().manual_seed(2))
    other = torch.randn(1, 4, 6, 7, generator=torch.Generator().manual_seed(3))

    with torch.no_grad():
        conv.inverse(first)
        torch.testing.assert_close(
            conv.inverse(second), conv.inverse_sequential(second), atol=1e-5, rtol=0
        )
        conv.weight.mul_(1.5)
        torch.testing.assert_close(
            conv.inverse(second), conv.inverse_sequential(second), atol=1e-5, rtol=0
        )
        torch.testing.assert_close(
            conv.inverse(other), conv.inverse_sequential(other), atol=1e-5, rtol=0
        )
        torch.testing.assert_close(
            conv.inverse(first), conv.inverse_sequential(first), atol=1e-5, rtol=0
        )


def test_cinc_reads_only_pixels_above_and_to_the_left():
    conv = _perturbed(CInCConv2d(2), seed=7)
    x = torch.zeros(1, 2, 6, 6)
    x[0, :, 3, 3] = 1.0

    with torch.no_grad():
        y = conv(x)[0][0].abs().sum(0)

    touched = torch.nonzero(y > 0).tolist()
    assert [3, 3] in touched
    assert all(3 <= i <= 5 and 3 <= j <= 5 for i, j in touched)
    assert len(touched) == 9


def test_cinc_layer_runs_on_channels_and_sizes_it_was_not_built_for():
    conv = CInCConv2d(4)
    with pytest.raises(InvalidFlowShape, match=r"\(B, 4, H, W\).*\(2, 3, 5, 5\)"):
        conv(torch.zeros(2, 3, 5, 5))
    with pytest.raises(ValueError, match="odd"):
        CInCConv2d(4, kernel_size=2)


def test_split_inverts_and_scores_the_factored_half():
    split = _perturbed(Split(6), seed=8)
    x = torch.randn(2, 6, 4, 4, generator=torch.Generator().manual_seed(8))

    with torch.no_grad():
        kept, factored, log_prob = split(x)
        mean, log_std = split.prior(kept).chunk(2, dim=1)
        expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(factored)

    assert kept.shape == factored.shape == (2, 3, 4, 4)
    torch.testing.assert_close(split.inverse(kept, factored), x)
    torch.testing.assert_close(log_prob, expected.flatten(1).sum(1))


def test_split_draws_from_its_prior_with_a_temperature():
    split = _perturbed(Split(4), seed=9)
    kept = torch.randn(500, 2, 4, 4, generator=torch.Generator().manual_seed(9))

    with torch.no_grad():
        mean, log_std = split.prior(kept).chunk(2, dim=1)
        cold = split.inverse(kept, temperature=0.0)[:, 2:]
        warm = split.inverse(
            kept, temperature=0.5, generator=torch.Generator().manual_seed(1)
        )[:, 2:]

    torch.testing.assert_close(cold, mean)
    ratio = ((warm - mean) / log_std.exp()).std()
    assert ratio.item() == pytest.approx(0.5, rel=0.05)


def test_actnorm_normalises_its_first_batch():
    norm = ActNorm(3)
    x = 4 * torch.randn(64, 3, 5, 5, generator=torch.Generator().manual_seed(10)) + 2

    y, _ = norm(x)
    y2, _ = norm(x * 10)

    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2, rtol=0)
    assert y2.std() > 5


def test_coupling_scale_stays_within_its_bound():
    coupling = _perturbed(
        AffineCoupling(4, hidden=8, scale_bound=1.5), seed=11, scale=5
    )
    x = 100 * torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(11))

    with torch.no_grad():
        _, logdet = coupling(x)

    assert logdet.abs().max() <= 1.5 * 2 * 4 * 4 + 1e-4
    assert logdet.abs().max() > 1.0


def test_gaussian_log_prob_matches_torch_distributions():
    z = torch.randn(3, 2, 2, 2)
    mean, log_std = torch.randn(3, 2, 2, 2), torch.randn(3, 2, 2, 2)
    expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(z)
    torch.testing.assert_close(
        gaussian_log_prob(z, mean, log_std), expected.flatten(1).sum(1)
    )
