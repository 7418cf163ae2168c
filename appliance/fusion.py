"""One verdict per physical seed from the class probabilities of its two views.

The rule: a defect seen clearly from either side makes the seed impure. A defect
shows on one face only as often as not (a chip, a patch, a crack on the upper or
lower side), and the other face then looks pure; averaging the two views would
dilute exactly those defects. So the view that is surest the seed is impure
decides whenever it is sure enough (`DEFECT_THRESHOLD`); otherwise the seed takes
the pure class the two views agree on best.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Fused-verdict flags.
ONE_VIEW = "one_view"  # only one view of the seed was classified
LOW_CONFIDENCE = "low_confidence"  # the deciding probability is below LOW_CONFIDENCE_P
VIEWS_DISAGREE = "views_disagree"  # both views impure, but of different classes

#: Impurity probability from which one view's defect decides the seed. Chosen on
#: simulated validation samples, not those the benchmark reports on: with the
#: default maize model, `bench/inspection.py --seed 7000 --samples 8` gave a fused
#: accuracy of 96.9% at 0.5, 97.2% at 0.6 and 97.3% at 0.7.
DEFECT_THRESHOLD = 0.7
LOW_CONFIDENCE_P = 0.6


@dataclass(frozen=True)
class FusedVerdict:
    """The seed's class and how sure the deciding view was.

    Attributes
    ----------
    class_index : int
        Index into the bundle's classes.
    probability : float
        Probability of that class in the deciding view (or the views' mean).
    flags : tuple of str
    """

    class_index: int
    probability: float
    flags: tuple[str, ...] = ()


def fuse_views(
    top: NDArray[np.floating] | None,
    bottom: NDArray[np.floating] | None,
    pure_mask: NDArray[np.bool_],
    *,
    threshold: float = DEFECT_THRESHOLD,
) -> FusedVerdict:
    """Fuse the class probabilities of a seed's top and bottom views.

    Parameters
    ----------
    top, bottom : (C,) float ndarray or None
        Class probabilities of each view; None for a view that did not see it.
    pure_mask : (C,) bool ndarray
        True for the classes that count as pure.
    threshold : float
        Impurity probability from which a single view's defect decides.

    Raises
    ------
    ValueError
        If neither view is given.
    """
    views = [p for p in (top, bottom) if p is not None]
    if not views:
        raise ValueError("a seed needs at least one classified view")
    flags = [ONE_VIEW] if len(views) == 1 else []
    impure = [float(1.0 - p[pure_mask].sum()) for p in views]

    decider = int(np.argmax(impure))
    if impure[decider] >= threshold:
        p = views[decider]
        masked = np.where(pure_mask, -1.0, p)
        k = int(np.argmax(masked))
        confidence = float(p[k])
        others = [int(np.argmax(np.where(pure_mask, -1.0, v))) for v in views]
        if len(views) == 2 and min(impure) >= threshold and others[0] != others[1]:
            flags.append(VIEWS_DISAGREE)
    else:
        mean = np.mean(views, axis=0)
        k = int(np.argmax(np.where(pure_mask, mean, -1.0)))
        confidence = float(mean[k])
    if confidence < LOW_CONFIDENCE_P:
        flags.append(LOW_CONFIDENCE)
    return FusedVerdict(k, confidence, tuple(flags))
