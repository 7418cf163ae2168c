"""BatchBALD speed: choose 100 seeds from a pool of 10,000 with 20 dropout draws.

Run: ``PYTHONPATH=. python bench/active.py`` (add ``--skip-reference`` to leave
out batchbald-redux, which takes minutes).

The pool's predictions are made the way the appliance makes them: (N, D) features
from clusters, one per class, most items near their class and some between
classes, through a linear final layer under K dropout masks shared by the whole
pool (`models.active.mc_dropout.mc_log_probs`). The same log-probabilities go to
this project's `batchbald` (lazy greedy, float32; and exhaustive) and to the
reference `batchbald_redux.get_batchbald_batch`, in the same process.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from torch import nn

from models.active import batchbald, mutual_information
from models.active.mc_dropout import dropout_masks, mc_log_probs


class _Head(nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.fc = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(weight)
            self.fc.bias.zero_()


def pool_log_probs(n: int, k: int, c: int, *, seed: int = 0) -> torch.Tensor:
    """Return (N, K, C) MC-dropout log-probabilities of a realistic pool."""
    rng = np.random.default_rng(seed)
    d = 64
    means = rng.normal(0, 1, (c, d)).astype(np.float32)
    labels = rng.integers(0, c, n)
    # Most seeds lie near their class; one in five lies between two classes.
    between = rng.random(n) < 0.2
    other = rng.integers(0, c, n)
    mix = np.where(between, rng.uniform(0.3, 0.7, n), 0.0)[:, None]
    feats = (1 - mix) * means[labels] + mix * means[other]
    feats += rng.normal(0, 0.35, (n, d))
    head = _Head(torch.from_numpy(3.0 * means))
    masks = dropout_masks(k, d, p=0.5, seed=seed)
    return mc_log_probs(head, feats.astype(np.float32), masks)


def _time(fn):  # noqa: ANN001, ANN202
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=10_000)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--skip-exhaustive", action="store_true")
    parser.add_argument(
        "--reference-batch",
        type=int,
        help="let batchbald-redux choose only this many (it needs minutes per "
        "choice here); its time is then a lower bound for the whole batch",
    )
    args = parser.parse_args()

    log_probs = pool_log_probs(args.pool, args.draws, args.classes)
    mi = mutual_information(log_probs)
    print(
        f"pool {args.pool}, K={args.draws}, C={args.classes}, batch {args.batch}, "
        f"num_samples {args.num_samples}; torch threads {torch.get_num_threads()}"
    )
    print(
        f"pool mutual information: median {mi.median():.4f}, 90th percentile "
        f"{mi.quantile(0.9):.4f}, max {mi.max():.4f} nats"
    )

    torch.manual_seed(0)
    lazy_s, lazy = _time(lambda: batchbald(log_probs, args.batch, args.num_samples))
    print(f"seedqa batchbald (lazy, float32):      {lazy_s:7.2f} s")
    if not args.skip_exhaustive:
        torch.manual_seed(0)
        full_s, full = _time(
            lambda: batchbald(log_probs, args.batch, args.num_samples, exhaustive=True)
        )
        print(f"seedqa batchbald (exhaustive, float32): {full_s:7.2f} s")
        same = len(set(lazy.indices) & set(full.indices))
        print(f"  lazy and exhaustive batches share {same} of {args.batch} seeds")

    if args.skip_reference:
        return
    from batchbald_redux.batchbald import get_batchbald_batch

    ref_batch = args.reference_batch or args.batch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        ref_s, ref = _time(
            lambda: get_batchbald_batch(log_probs, ref_batch, args.num_samples)
        )
    print(f"batchbald-redux 2.0.5 (float32), {ref_batch} choices: {ref_s:7.2f} s")
    bound = "at least " if ref_batch < args.batch else ""
    print(
        f"ratio reference / seedqa lazy for {args.batch} choices: {bound}"
        f"{ref_s / lazy_s:.1f}x"
    )
    first = min(ref_batch, args.batch)
    print(
        f"  the first {first} choices agree at "
        f"{sum(a == b for a, b in zip(ref.indices, lazy.indices, strict=False))} "
        f"positions; scores after {first}: {ref.scores[first - 1]:.3f} "
        f"(reference), {lazy.scores[first - 1]:.3f} (lazy) nats"
    )


if __name__ == "__main__":
    main()
