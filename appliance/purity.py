"""Physical-purity statistics of one sample, from its classified seeds.

Purity is reported three ways: by count (share of pure seeds, Wilson interval), by
estimated weight (each seed's mass estimated from its projected area, ratio
estimator with a delta-method interval) and, where the classifier's confusion matrix
on its validation set is known, by count corrected for the classifier's errors
(constrained least squares, parametric bootstrap interval).

These are image-based estimates; none of them is an ISTA purity test, and every
report says so (`STATEMENT`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray
from scipy.optimize import nnls

log = logging.getLogger(__name__)

#: The sentence every purity report carries.
STATEMENT = (
    "Image-based estimate of physical purity from seed photographs; "
    "not an ISTA purity test."
)

#: Weight of the sum-to-one row in the augmented least-squares system; large enough
#: that the constraint holds to ~1e-6 before the final renormalisation.
_SIMPLEX_WEIGHT = 1e3


class UnknownSeedClass(ValueError):
    """A seed carries a class name that is not among the recipe's classes."""


class UnclassifiedSeed(ValueError):
    """A seed has no class; a purity report needs every seed classified."""


@dataclass(frozen=True)
class PurityEstimate:
    """A purity figure with its interval.

    Attributes
    ----------
    value_pct : float
        Point estimate, percent (0-100).
    ci95_pct : tuple of float
        ``(low, high)`` interval, percent; 95% unless the producing function was
        asked for another confidence.
    """

    value_pct: float
    ci95_pct: tuple[float, float]

    def to_json(self) -> dict[str, Any]:
        """Return the estimate as JSON-ready data, rounded to 0.1 percent.

        Returns
        -------
        dict
            ``{"value_pct": float, "ci95_pct": [low, high]}``.
        """
        low, high = self.ci95_pct
        return {
            "value_pct": round(self.value_pct, 1),
            "ci95_pct": [round(low, 1), round(high, 1)],
        }


@dataclass(frozen=True)
class PuritySummary:
    """Purity statistics of one sample, as reported.

    Attributes
    ----------
    n_seeds : int
        Seeds in the sample.
    counts : dict of str to int
        Seeds per class, in the recipe's class order.
    shares_pct : dict of str to float
        Share of seeds per class by count, percent.
    purity_by_count : PurityEstimate
        Share of pure seeds by count, Wilson 95% interval.
    purity_by_weight_pct : float
        Share of pure seed mass in the estimated total mass, percent.
    purity_by_weight : PurityEstimate
        The same share with a delta-method 95% interval.
    estimated_mass_g : float
        Estimated total mass of the sample, grams.
    purity_corrected : PurityEstimate or None
        Purity by count corrected for the classifier's errors; None when no
        confusion matrix was given.
    """

    n_seeds: int
    counts: dict[str, int]
    shares_pct: dict[str, float]
    purity_by_count: PurityEstimate
    purity_by_weight_pct: float
    purity_by_weight: PurityEstimate
    estimated_mass_g: float
    purity_corrected: PurityEstimate | None

    def to_json(self) -> dict[str, Any]:
        """Return the summary as JSON-ready data.

        Percentages are rounded to 0.1, the mass to 0.001 g (1 mg: a small-seeded
        sample weighs well under a gram).

        Returns
        -------
        dict
            Keys ``n_seeds``, ``counts``, ``shares_pct``, ``purity_by_count``,
            ``purity_by_weight_pct``, ``purity_by_weight``, ``estimated_mass_g``,
            ``purity_corrected`` (null without a confusion matrix) and
            ``statement`` (`STATEMENT`).
        """
        corrected = self.purity_corrected
        return {
            "n_seeds": self.n_seeds,
            "counts": dict(self.counts),
            "shares_pct": {k: round(v, 1) for k, v in self.shares_pct.items()},
            "purity_by_count": self.purity_by_count.to_json(),
            "purity_by_weight_pct": round(self.purity_by_weight_pct, 1),
            "purity_by_weight": self.purity_by_weight.to_json(),
            "estimated_mass_g": round(self.estimated_mass_g, 3),
            "purity_corrected": None if corrected is None else corrected.to_json(),
            "statement": STATEMENT,
        }


def wilson_interval(
    successes: int, n: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    From "Probable inference, the law of succession, and statistical inference"
    (Wilson, 1927).

    Parameters
    ----------
    successes : int
        Successes observed, ``0 <= successes <= n``.
    n : int
        Trials.
    confidence : float, optional
        Two-sided confidence level, in (0, 1).

    Returns
    -------
    tuple of float
        ``(low, high)`` proportions in [0, 1]; ``(0.0, 1.0)`` when ``n == 0``.

    Raises
    ------
    ValueError
        If the counts or the confidence are out of range.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n == 0:
        return (0.0, 1.0)

    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * np.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))

    # The bounds at 0 and n are exact in theory; pin them against rounding.
    low = 0.0 if successes == 0 else max(0.0, float(centre - half))
    high = 1.0 if successes == n else min(1.0, float(centre + half))
    return (low, high)


def purity_by_count(is_pure: Sequence[bool]) -> PurityEstimate:
    """Share of pure seeds by count, with a Wilson 95% interval.

    Parameters
    ----------
    is_pure : sequence of bool, length N
        Whether each seed is pure seed.

    Returns
    -------
    PurityEstimate
        Percent.

    Raises
    ------
    ValueError
        If the sample is empty.
    """
    n = len(is_pure)
    if n == 0:
        raise ValueError("purity by count needs at least one seed, got none")

    pure = int(sum(bool(y) for y in is_pure))
    low, high = wilson_interval(pure, n)
    return PurityEstimate(100.0 * pure / n, (100.0 * low, 100.0 * high))


def seed_mass_mg(
    area_mm2: Sequence[float] | NDArray[np.float64],
    *,
    mass_mg_per_mm2: float,
    mass_exponent: float = 1.5,
) -> NDArray[np.float64]:
    """Estimate each seed's mass from its projected area.

    ``mass_mg = mass_mg_per_mm2 * area_mm2 ** mass_exponent``: mass grows with
    volume, which for seeds of one shape grows as area to the power 1.5. The
    coefficient is fitted per recipe (species); its unit is strictly
    mg / mm^(2 * mass_exponent), and mg/mm² only at exponent 1.

    Parameters
    ----------
    area_mm2 : sequence of float, length N
        Projected area of each seed, mm².
    mass_mg_per_mm2 : float
        Recipe coefficient, > 0.
    mass_exponent : float, optional
        Power of the area, > 0.

    Returns
    -------
    (N,) ndarray of float64
        Estimated mass of each seed, mg.

    Raises
    ------
    ValueError
        If an area is not finite and positive, or the coefficients are not positive.
    """
    area = np.asarray(area_mm2, dtype=np.float64)
    if area.ndim != 1:
        raise ValueError(f"area_mm2 must be one value per seed, got shape {area.shape}")
    bad = ~np.isfinite(area) | (area <= 0.0)
    if bad.any():
        raise ValueError(
            f"seed areas must be finite and > 0 mm², got {area[bad][:5].tolist()} "
            f"at seeds {np.flatnonzero(bad)[:5].tolist()}; check the segmentation"
        )
    if not mass_mg_per_mm2 > 0.0 or not mass_exponent > 0.0:
        raise ValueError(
            "mass_mg_per_mm2 and mass_exponent must be > 0, got "
            f"{mass_mg_per_mm2} and {mass_exponent}; check the recipe"
        )

    return mass_mg_per_mm2 * area**mass_exponent


def purity_by_weight(
    is_pure: Sequence[bool],
    area_mm2: Sequence[float],
    *,
    mass_mg_per_mm2: float,
    mass_exponent: float = 1.5,
) -> tuple[float, float]:
    """Share of pure seed in the sample's estimated mass.

    Each seed's mass is estimated from its projected area (`seed_mass_mg`).

    Parameters
    ----------
    is_pure : sequence of bool, length N
        Whether each seed is pure seed.
    area_mm2 : sequence of float, length N
        Projected area of each seed, mm².
    mass_mg_per_mm2 : float
        Recipe coefficient of the mass model (see `seed_mass_mg`).
    mass_exponent : float, optional
        Power of the area in the mass model.

    Returns
    -------
    purity_pct : float
        Pure mass over total mass, percent.
    total_mass_g : float
        Estimated mass of the whole sample, grams.

    Raises
    ------
    ValueError
        If the sample is empty, the lengths differ, or an area is invalid.
    """
    y, mass = _pure_and_mass(is_pure, area_mm2, mass_mg_per_mm2, mass_exponent)

    total = float(mass.sum())
    return (100.0 * float(mass[y].sum()) / total, total / 1000.0)


def purity_by_weight_estimate(
    is_pure: Sequence[bool],
    area_mm2: Sequence[float],
    *,
    mass_mg_per_mm2: float,
    mass_exponent: float = 1.5,
) -> PurityEstimate:
    """Share of pure seed by estimated mass, with a delta-method 95% interval.

    The seeds are the sampling units and purity is the ratio estimator
    ``p = sum(m_i y_i) / sum(m_i)``, with variance
    ``n / (n - 1) * sum(m_i**2 (y_i - p)**2) / sum(m_i)**2`` and a normal interval
    clipped to [0, 100]. The interval is deterministic.

    Parameters
    ----------
    is_pure : sequence of bool, length N
        Whether each seed is pure seed.
    area_mm2 : sequence of float, length N
        Projected area of each seed, mm².
    mass_mg_per_mm2 : float
        Recipe coefficient of the mass model (see `seed_mass_mg`).
    mass_exponent : float, optional
        Power of the area in the mass model.

    Returns
    -------
    PurityEstimate
        Percent.

    Raises
    ------
    ValueError
        If the sample is empty, the lengths differ, or an area is invalid.

    Notes
    -----
    Limitation: the interval has zero width when every seed is pure or none is
    (the estimated variance vanishes); purity by count gives the honest interval
    there. With a single seed the variance is undefined and the interval is the
    whole range, [0, 100].
    """
    y, mass = _pure_and_mass(is_pure, area_mm2, mass_mg_per_mm2, mass_exponent)
    n = y.size

    total = mass.sum()
    p = float(mass[y].sum() / total)
    if n == 1:
        return PurityEstimate(100.0 * p, (0.0, 100.0))

    var = n / (n - 1) * float(np.sum(mass**2 * (y - p) ** 2)) / float(total) ** 2
    half = NormalDist().inv_cdf(0.975) * np.sqrt(var)
    low, high = max(0.0, p - half), min(1.0, p + half)
    return PurityEstimate(100.0 * p, (100.0 * low, 100.0 * high))


def corrected_purity(
    predicted_counts: Sequence[int],
    confusion: npt.ArrayLike,
    pure_mask: Sequence[bool],
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> PurityEstimate:
    """Purity by count, corrected for the classifier's errors.

    With ``M[i, j] = P(predicted j | true i)`` from the row-normalised confusion
    matrix, the expected predicted shares are ``q = M.T @ p`` for true shares ``p``.
    ``p`` is recovered from the observed predicted shares by least squares on the
    simplex (non-negative, summing to one) and purity is the sum of ``p`` over the
    pure classes.

    The interval is a parametric bootstrap percentile interval: each replicate
    redraws the sample's predicted counts (multinomial, observed shares, same
    number of seeds) and each confusion row (multinomial, that row's validation
    count), and solves again. It is deterministic for a given ``seed``.

    A class whose confusion row holds no validation seeds is treated as perfectly
    classified (an identity row), which understates the uncertainty for it; a
    warning is logged.

    Parameters
    ----------
    predicted_counts : sequence of int, length C
        Seeds of the sample predicted as each class.
    confusion : (C, C) array_like of int
        Validation-set counts; rows are the true class, columns the predicted one,
        in the order of ``predicted_counts``.
    pure_mask : sequence of bool, length C
        Which classes are pure seed.
    confidence : float, optional
        Two-sided confidence level of the interval, in (0, 1).
    n_boot : int, optional
        Bootstrap replicates, >= 1.
    seed : int, optional
        Seed of the bootstrap's random generator.

    Returns
    -------
    PurityEstimate
        Percent; with an identity confusion matrix the value equals the raw purity
        by count.

    Raises
    ------
    ValueError
        If the shapes disagree, the sample is empty, or the confusion matrix does
        not hold non-negative integer counts.
    """
    counts = np.asarray(predicted_counts)
    pure = np.asarray(pure_mask, dtype=bool)
    conf = _validation_counts(confusion, counts.size)
    if counts.ndim != 1 or pure.shape != counts.shape:
        raise ValueError(
            f"predicted_counts and pure_mask must both have one entry per class, "
            f"got shapes {counts.shape} and {pure.shape}"
        )
    if np.any(counts < 0) or not np.all(counts == np.round(counts)):
        raise ValueError(
            f"predicted_counts must be non-negative integers, got {counts.tolist()}"
        )
    counts = counts.astype(np.int64)
    n = int(counts.sum())
    if n == 0:
        raise ValueError("corrected purity needs at least one seed, got none")
    if not 0 < confidence < 1 or n_boot < 1:
        raise ValueError(
            f"need 0 < confidence < 1 and n_boot >= 1, got {confidence} and {n_boot}"
        )

    row_n = conf.sum(axis=1)
    empty = row_n == 0
    if empty.any():
        log.warning(
            "confusion rows %s have no validation seeds; treating those classes "
            "as perfectly classified",
            np.flatnonzero(empty).tolist(),
        )
    rates = _row_rates(conf.astype(np.float64), empty)
    q = counts / n
    value = float(_solve_shares(rates, q)[pure].sum())

    rng = np.random.default_rng(seed)
    q_boot = rng.multinomial(n, q, size=n_boot) / n
    rows_boot = np.zeros((n_boot, *conf.shape))
    for i in np.flatnonzero(~empty):
        rows_boot[:, i, :] = rng.multinomial(row_n[i], rates[i], size=n_boot)
    boot = np.empty(n_boot)
    for b in range(n_boot):
        p = _solve_shares(_row_rates(rows_boot[b], empty), q_boot[b])
        boot[b] = p[pure].sum()

    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(boot, [tail, 100.0 - tail])
    return PurityEstimate(100.0 * value, (100.0 * float(low), 100.0 * float(high)))


def class_counts(classes: Sequence[str], labels: Sequence[str]) -> dict[str, int]:
    """Count seeds per class.

    Parameters
    ----------
    classes : sequence of str
        The recipe's class names, unique; sets the order of the result.
    labels : sequence of str
        Class of each seed.

    Returns
    -------
    dict of str to int
        Seeds per class, every class present (zero when unseen), in ``classes``
        order.

    Raises
    ------
    UnknownSeedClass
        If a label is not among ``classes`` (a ValueError).
    ValueError
        If ``classes`` repeats a name.
    """
    if len(set(classes)) != len(classes):
        raise ValueError(f"class names must be unique, got {list(classes)}")

    counts = dict.fromkeys(classes, 0)
    unknown = sorted({str(label) for label in labels if label not in counts})
    if unknown:
        raise UnknownSeedClass(
            f"seed classes {unknown} are not among the recipe's classes "
            f"{list(classes)}; check that the model and the recipe match"
        )
    for label in labels:
        counts[label] += 1
    return counts


def summarise(
    fused_classes: Sequence[str | None],
    area_mm2: Sequence[float],
    *,
    classes: Sequence[str],
    pure_classes: Sequence[str],
    confusion: npt.ArrayLike | None,
    mass_mg_per_mm2: float,
    mass_exponent: float = 1.5,
) -> PuritySummary:
    """Compute the purity statistics of one sample.

    Parameters
    ----------
    fused_classes : sequence of str, length N
        Class of each seed, fused over its views; None (unclassified) is refused.
    area_mm2 : sequence of float, length N
        Projected area of each seed, mm².
    classes : sequence of str, length C
        The recipe's class names, in the order of the confusion matrix.
    pure_classes : sequence of str
        Classes that count as pure seed; each among ``classes``.
    confusion : (C, C) array_like of int or None
        Classifier's validation counts (rows true, columns predicted); None skips
        the corrected purity.
    mass_mg_per_mm2 : float
        Recipe coefficient of the mass model (see `seed_mass_mg`).
    mass_exponent : float, optional
        Power of the area in the mass model.

    Returns
    -------
    PuritySummary
        The sample's purity statistics.

    Raises
    ------
    UnclassifiedSeed
        If a seed has no class (a ValueError).
    UnknownSeedClass
        If a seed's class or a pure class is not among ``classes`` (a ValueError).
    ValueError
        If the sample is empty or the lengths differ.
    """
    unclassified = [i for i, c in enumerate(fused_classes) if c is None]
    if unclassified:
        raise UnclassifiedSeed(
            f"{len(unclassified)} seeds have no class (first: {unclassified[:5]}); "
            "classify or remove them before the purity report"
        )
    labels = [c for c in fused_classes if c is not None]
    not_classes = sorted(set(pure_classes) - set(classes))
    if not_classes:
        raise UnknownSeedClass(
            f"pure classes {not_classes} are not among the recipe's classes "
            f"{list(classes)}"
        )
    if not labels:
        raise ValueError("the sample has no seeds; nothing to report")

    counts = class_counts(classes, labels)
    n = len(labels)
    pure_set = set(pure_classes)
    is_pure = [c in pure_set for c in labels]

    by_weight = purity_by_weight_estimate(
        is_pure, area_mm2, mass_mg_per_mm2=mass_mg_per_mm2, mass_exponent=mass_exponent
    )
    _, mass_g = purity_by_weight(
        is_pure, area_mm2, mass_mg_per_mm2=mass_mg_per_mm2, mass_exponent=mass_exponent
    )
    corrected = None
    if confusion is not None:
        corrected = corrected_purity(
            list(counts.values()), confusion, [c in pure_set for c in classes]
        )

    return PuritySummary(
        n_seeds=n,
        counts=counts,
        shares_pct={c: 100.0 * k / n for c, k in counts.items()},
        purity_by_count=purity_by_count(is_pure),
        purity_by_weight_pct=by_weight.value_pct,
        purity_by_weight=by_weight,
        estimated_mass_g=mass_g,
        purity_corrected=corrected,
    )


def _pure_and_mass(
    is_pure: Sequence[bool],
    area_mm2: Sequence[float],
    mass_mg_per_mm2: float,
    mass_exponent: float,
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Validate a sample and return its pure flags and seed masses (mg)."""
    y = np.asarray(is_pure, dtype=bool)
    if y.size == 0:
        raise ValueError("purity by weight needs at least one seed, got none")
    if len(area_mm2) != y.size:
        raise ValueError(
            f"need one area per seed, got {len(area_mm2)} areas for {y.size} seeds"
        )
    mass = seed_mass_mg(
        area_mm2, mass_mg_per_mm2=mass_mg_per_mm2, mass_exponent=mass_exponent
    )
    return y, mass


def _validation_counts(confusion: npt.ArrayLike, n_classes: int) -> NDArray[np.int64]:
    """Check a confusion matrix of validation counts and return it as integers."""
    conf = np.asarray(confusion, dtype=np.float64)
    if conf.shape != (n_classes, n_classes):
        raise ValueError(
            f"confusion must be ({n_classes}, {n_classes}) for {n_classes} classes, "
            f"got shape {conf.shape}"
        )
    if not np.all(np.isfinite(conf)) or np.any(conf < 0):
        raise ValueError("confusion must hold non-negative finite counts")
    if not np.all(conf == np.round(conf)):
        raise ValueError(
            "confusion must hold validation counts (integers), not rates; the "
            "bootstrap needs each row's number of validation seeds"
        )
    return conf.astype(np.int64)


def _row_rates(
    conf: NDArray[np.float64], empty: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """Row-normalise counts to P(predicted | true); empty rows become identity."""
    rates = np.eye(conf.shape[0])
    full = ~empty
    rates[full] = conf[full] / conf[full].sum(axis=1, keepdims=True)
    return rates


def _solve_shares(
    rates: NDArray[np.float64], q: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Least-squares true shares p >= 0, sum 1, with ``rates.T @ p ~= q``."""
    c = rates.shape[0]
    a = np.vstack([rates.T, np.full((1, c), _SIMPLEX_WEIGHT)])
    b = np.append(q, _SIMPLEX_WEIGHT)
    p, _ = nnls(a, b)
    total = p.sum()
    return p / total if total > 0 else np.full(c, 1.0 / c)
