"""How good generated seeds are, judged by our own classifier (nothing downloaded).

Three views of quality, all in the feature space of an appliance classifier
bundle (its 512-d pooled ResNet18 features) instead of an ImageNet Inception:

- the classifier's accuracy on generated images of each class (are they
  recognisably that class?);
- precision and recall from "Improved Precision and Recall Metric for Assessing
  Generative Models", and density and coverage from "Reliable Fidelity and
  Diversity Metrics for Generative Models" (are they like real seeds, and do they
  cover the real variety?);
- the kernel inception distance of "Demystifying MMD GANs" (KID: an unbiased
  squared MMD with a cubic polynomial kernel), here over the classifier features.
"""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from appliance.classifier import SeedClassifier, to_tensor

log = logging.getLogger(__name__)


def fit_to(crops: NDArray[np.uint8], size: int) -> NDArray[np.uint8]:
    """Resize (N, S, S, 3) crops to `size` pixels (area averaging when shrinking)."""
    if crops.shape[1] == size:
        return crops
    interpolation = cv2.INTER_AREA if crops.shape[1] > size else cv2.INTER_LINEAR
    out = np.empty((len(crops), size, size, 3), np.uint8)
    for i, crop in enumerate(crops):
        out[i] = cv2.resize(crop, (size, size), interpolation=interpolation)
    return out


def features_and_probabilities(
    classifier: SeedClassifier, crops: NDArray[np.uint8], batch_size: int = 128
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Return pooled features (N, F) and class probabilities (N, C) of `crops`.

    Crops of another side are resized to the classifier's input size first.

    Raises
    ------
    ValueError
        If the classifier runs in int8, whose graph has no feature layer to read;
        load it with ``numeric="fp32"``.
    """
    if classifier.numeric != "fp32":
        raise ValueError(
            f"quality needs the classifier in fp32, got {classifier.numeric}; "
            "load it with numeric='fp32'"
        )
    info = classifier.info
    crops = fit_to(crops, info.input_size)
    net = classifier.network
    pooled: list[torch.Tensor] = []
    hook = net.avgpool.register_forward_hook(
        lambda _m, _i, out: pooled.append(torch.flatten(out, 1))
    )
    probs = []
    try:
        with torch.inference_mode():
            for start in range(0, len(crops), batch_size):
                logits = net(to_tensor(crops[start : start + batch_size], info))
                probs.append(torch.softmax(logits, 1))
    finally:
        hook.remove()
    if not probs:
        return np.zeros((0, 512), np.float32), np.zeros(
            (0, len(info.classes)), np.float32
        )
    return torch.cat(pooled).numpy(), torch.cat(probs).numpy()


def kid(
    real: NDArray[np.float32],
    fake: NDArray[np.float32],
    *,
    subsets: int = 20,
    subset_size: int = 100,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel inception distance between two feature sets: (mean, std) over subsets.

    Each subset draws ``min(subset_size, len(real), len(fake))`` rows of each set;
    the kernel is ``(x . y / d + 1) ** 3``. Zero means the same distribution;
    the estimate is unbiased, so it can be slightly negative.
    """
    m = min(subset_size, len(real), len(fake))
    if m < 2:
        raise ValueError(f"KID needs at least 2 features per set, got {m}")
    rng = np.random.default_rng(seed)
    d = real.shape[1]
    values = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)].astype(np.float64)
        y = fake[rng.choice(len(fake), m, replace=False)].astype(np.float64)
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        off = m * (m - 1)
        values.append(
            (kxx.sum() - np.trace(kxx)) / off
            + (kyy.sum() - np.trace(kyy)) / off
            - 2 * kxy.mean()
        )
    return float(np.mean(values)), float(np.std(values))


def _distances(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def _kth_radius(x: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """Distance from each row of `x` to its k-th nearest other row."""
    d = _distances(x, x)
    return np.sort(d, axis=1)[:, k]


def manifold_metrics(
    real: NDArray[np.float32], fake: NDArray[np.float32], *, k: int = 5
) -> dict[str, float]:
    """Precision, recall, density and coverage of `fake` against `real` features.

    Each set's manifold is the union of balls reaching every point's k-th
    nearest neighbour in the same set.
    """
    if min(len(real), len(fake)) <= k:
        raise ValueError(
            f"need more than k={k} features per set, got {len(real)} real and "
            f"{len(fake)} generated"
        )
    x, y = real.astype(np.float64), fake.astype(np.float64)
    r_real, r_fake = _kth_radius(x, k), _kth_radius(y, k)
    d = _distances(x, y)  # (real, fake)
    inside_real = d <= r_real[:, None]
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((d <= r_fake[None, :]).any(axis=1).mean()),
        "density": float(inside_real.sum(axis=0).mean() / k),
        "coverage": float((d.min(axis=1) <= r_real).mean()),
    }


def generated_quality(
    classifier: SeedClassifier,
    real: NDArray[np.uint8],
    real_labels: NDArray[np.int64],
    fake: NDArray[np.uint8],
    fake_labels: NDArray[np.int64],
    classes: tuple[str, ...],
    *,
    k: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Judge generated seeds against held-out real ones, per class and overall.

    `classes` are the generator's; the classifier must know every one of them.

    Returns
    -------
    dict
        ``per_class``: for each class, ``accuracy`` (share of its generated images
        the classifier calls that class), ``kid``, ``kid_std`` and the manifold
        metrics (None where too few images); ``overall``: the same over all
        images, accuracy weighted by image count.
    """
    known = classifier.info.classes
    missing = [c for c in classes if c not in known]
    if missing:
        raise ValueError(
            f"the classifier does not know the classes {missing} (its classes: "
            f"{list(known)}); judge with a bundle trained on the same classes"
        )
    to_judge = np.array([known.index(c) for c in classes])
    f_real, _ = features_and_probabilities(classifier, real)
    f_fake, p_fake = features_and_probabilities(classifier, fake)
    called = p_fake.argmax(1)

    per_class: dict[str, Any] = {}
    for c, name in enumerate(classes):
        r, f = f_real[real_labels == c], f_fake[fake_labels == c]
        entry: dict[str, Any] = {"real": len(r), "generated": len(f)}
        entry["accuracy"] = (
            float(np.mean(called[fake_labels == c] == to_judge[c])) if len(f) else None
        )
        entry.update(_distribution_metrics(r, f, k=k, seed=seed))
        per_class[name] = entry
    overall: dict[str, Any] = {
        "accuracy": float(np.mean(called == to_judge[fake_labels])),
        **_distribution_metrics(f_real, f_fake, k=k, seed=seed),
    }
    return {"per_class": per_class, "overall": overall}


def _distribution_metrics(
    real: NDArray[np.float32], fake: NDArray[np.float32], *, k: int, seed: int
) -> dict[str, float | None]:
    if min(len(real), len(fake)) <= k:
        return dict.fromkeys(
            ("kid", "kid_std", "precision", "recall", "density", "coverage")
        )
    mean, std = kid(real, fake, seed=seed)
    return {"kid": mean, "kid_std": std, **manifold_metrics(real, fake, k=k)}
