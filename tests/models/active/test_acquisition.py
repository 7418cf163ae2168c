import math

import numpy as np
import pytest
import torch

from models.active import (
    bald,
    batchbald,
    entropy_kmeans,
    mutual_information,
    random_batch,
)

reference = pytest.importorskip("batchbald_redux.batchbald")


def _pool(n: int, k: int, c: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn((n, k, c), generator=g) + 3 * torch.randn(
        (n, 1, c), generator=g
    )
    return torch.log_softmax(logits, dim=2).double()


def _reference(log_probs, batch_size, num_samples, seed):
    torch.manual_seed(seed)
    return reference.get_batchbald_batch(
        log_probs, batch_size, num_samples, dtype=torch.double
    )


@pytest.mark.parametrize("exhaustive", [True, False])
def test_exact_batchbald_matches_the_reference(exhaustive):
    # 4 classes, 3 items: 64 configurations, below num_samples: exact throughout.
    log_probs = _pool(60, 10, 4, seed=1)
    ours = batchbald(log_probs, 4, 1000, dtype=torch.double, exhaustive=exhaustive)
    theirs = _reference(log_probs, 4, 1000, seed=0)
    assert ours.indices == theirs.indices
    np.testing.assert_allclose(ours.scores, theirs.scores, rtol=1e-6)


def test_sampled_batchbald_matches_the_reference_from_the_same_seed():
    # 5 classes: from the fourth item on, 625 configurations exceed 300 samples.
    log_probs = _pool(60, 12, 5, seed=2)
    torch.manual_seed(7)
    ours = batchbald(log_probs, 6, 300, dtype=torch.double, exhaustive=True)
    theirs = _reference(log_probs, 6, 300, seed=7)
    assert ours.indices == theirs.indices
    np.testing.assert_allclose(ours.scores, theirs.scores, rtol=1e-6)


def test_lazy_sampled_batchbald_agrees_with_the_reference_statistically():
    log_probs = _pool(60, 12, 5, seed=3)
    overlaps, gaps = [], []
    for seed in range(3):
        torch.manual_seed(seed)
        ours = batchbald(log_probs, 6, 300, dtype=torch.double)
        theirs = _reference(log_probs, 6, 300, seed=seed)
        overlaps.append(len(set(ours.indices) & set(theirs.indices)) / 6)
        gaps.append(abs(ours.scores[-1] - theirs.scores[-1]))
    assert np.mean(overlaps) >= 0.75
    assert max(gaps) < 0.1


def test_first_batchbald_choice_is_the_bald_choice():
    log_probs = _pool(300, 8, 3, seed=4)
    first = batchbald(log_probs, 1)
    best = bald(log_probs, 1)
    assert first.indices == best.indices
    assert math.isclose(first.scores[0], best.scores[0], rel_tol=1e-6)


def test_bald_matches_the_reference():
    log_probs = _pool(100, 6, 4, seed=5)
    ours = bald(log_probs, 10)
    theirs = reference.get_bald_batch(log_probs, 10)
    assert ours.indices == theirs.indices
    np.testing.assert_allclose(ours.scores, theirs.scores, rtol=1e-9)


def test_batchbald_skips_a_duplicate_that_bald_would_take_twice():
    base = _pool(50, 10, 3, seed=6)
    top = int(torch.argmax(mutual_information(base)))
    pool = torch.cat([base, base[top : top + 1]])  # the most informative, twice
    assert set(bald(pool, 2).indices) == {top, 50}
    assert not {top, 50} <= set(batchbald(pool, 2, dtype=torch.double).indices)


def test_batch_mutual_information_never_exceeds_the_weights_entropy():
    exact = batchbald(_pool(200, 10, 4, seed=8), 5, 1024).scores
    assert all(b >= a for a, b in zip(exact, exact[1:], strict=False))
    assert exact[-1] <= math.log(10)


def test_entropy_kmeans_picks_distinct_uncertain_seeds_from_each_cluster():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    features = np.concatenate([c + rng.normal(0, 0.5, (40, 2)) for c in centres])
    probs = np.full((120, 2), [0.99, 0.01])
    probs[::4] = [0.5, 0.5]  # uncertain ones in every cluster
    log_probs = torch.from_numpy(np.log(probs))[:, None, :]
    chosen = entropy_kmeans(log_probs, features, 3, top_factor=10)
    assert len(set(chosen.indices)) == 3
    assert {i // 40 for i in chosen.indices} == {0, 1, 2}
    assert all(i % 4 == 0 for i in chosen.indices)


def test_random_batch_is_reproducible_and_without_repeats():
    a, b = random_batch(100, 20, seed=3), random_batch(100, 20, seed=3)
    assert a.indices == b.indices
    assert len(set(a.indices)) == 20


def test_log_probs_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"\(N pool items, K dropout draws"):
        batchbald(torch.zeros((10, 3)), 2)
