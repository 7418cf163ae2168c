"""A sample's report as plain data: the JSON others' tools read.

The layout is documented in ``docs/report-schema.md`` and versioned by
`SCHEMA_VERSION`; a change that removes or renames a key raises the version.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from appliance.inspection import Inspection, SeedObservation
from appliance.matching import BOTTOM_ONLY, TOP_ONLY
from appliance.purity import summarise
from appliance.recipes import Recipe
from appliance.segmentation import SeedRegion
from drivers.base import VIEWS

SCHEMA_VERSION = 2


def region_json(
    region: SeedRegion | None,
    probs: np.ndarray | None = None,
    classes: tuple[str, ...] = (),
) -> dict[str, Any] | None:
    """One view of a seed: label, box (x, y, w, h), area, centre, class."""
    if region is None:
        return None
    r0, c0, r1, c1 = region.bbox
    out: dict[str, Any] = {
        "label": region.label,
        "bbox": [c0, r0, c1 - c0, r1 - r0],
        "area_px": region.area_px,
        "centroid_px": [round(region.centroid[1], 2), round(region.centroid[0], 2)],
        "flags": list(region.flags),
    }
    if probs is not None:
        out["class"] = classes[int(np.argmax(probs))]
        out["probabilities"] = {
            c: round(float(p), 4) for c, p in zip(classes, probs, strict=True)
        }
    return out


def seed_json(seed: SeedObservation, inspection: Inspection) -> dict[str, Any]:
    """One physical seed of the report."""
    classes = inspection.classes
    verdict = seed.verdict
    return {
        "index": seed.index,
        "fused_class": inspection.fused_class(seed),
        "fused_probability": None if verdict is None else round(verdict.probability, 4),
        "top": region_json(seed.pair.top, seed.top_probs, classes),
        "bottom": region_json(seed.pair.bottom, seed.bottom_probs, classes),
        "area_mm2": round(seed.area_mm2, 2),
        "flags": list(seed.flags),
    }


def summary_json(inspection: Inspection, recipe: Recipe | None) -> dict[str, Any]:
    """Return counts, flags and, when the seeds are classified, the physical purity."""
    seeds = inspection.seeds
    flags = Counter(flag for seed in seeds for flag in seed.flags)
    out: dict[str, Any] = {
        "n_seeds": len(seeds),
        "n_paired": sum(
            TOP_ONLY not in s.flags and BOTTOM_ONLY not in s.flags for s in seeds
        ),
        "n_top_only": flags.get(TOP_ONLY, 0),
        "n_bottom_only": flags.get(BOTTOM_ONLY, 0),
        "flag_counts": dict(sorted(flags.items())),
    }
    if inspection.classifier is None or recipe is None or not seeds:
        return out
    info = inspection.classifier.info
    confusion = info.purity_confusion
    purity = summarise(
        [inspection.fused_class(s) for s in seeds],
        [s.area_mm2 for s in seeds],
        classes=info.classes,
        pure_classes=info.pure_classes,
        confusion=None if confusion is None else np.asarray(confusion),
        mass_mg_per_mm2=recipe.mass_mg_per_mm2,
        mass_exponent=recipe.mass_exponent,
    )
    return {**out, **purity.to_json()}


def model_json(inspection: Inspection) -> dict[str, Any] | None:
    """Which model bundle classified the seeds."""
    if inspection.classifier is None:
        return None
    bundle = inspection.classifier.bundle
    return {
        "name": bundle.info.name,
        "version": bundle.info.version,
        "sha256": bundle.sha256,
        "numeric": inspection.classifier.numeric,
        "classes": list(bundle.info.classes),
        "pure_classes": list(bundle.info.pure_classes),
        # Kept so that an amended sample's corrected purity is recomputed with the
        # error rates of the model that classified it, whatever is installed since.
        "confusion": bundle.info.purity_confusion,
    }


def sample_report(
    *,
    sample: Mapping[str, Any],
    inspection: Inspection,
    recipe: Recipe | None = None,
    files: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build the whole report of one sample.

    Parameters
    ----------
    sample : dict
        ``id``, ``lot``, ``code``, ``recipe``, ``operator``, ``captured_at``, ``rig``.
    inspection : Inspection
        What was measured.
    recipe : Recipe, optional
        The species profile (mass coefficients for purity by weight).
    files : dict, optional
        Paths of files written with the report (overlays), by name.
    """
    calibration = inspection.calibration
    meta = dict(sample)
    if isinstance(meta.get("captured_at"), datetime):
        meta["captured_at"] = meta["captured_at"].isoformat()
    meta["model"] = model_json(inspection)
    meta["mass_model"] = (
        None
        if recipe is None
        else {
            "mg_per_mm2": recipe.mass_mg_per_mm2,
            "exponent": recipe.mass_exponent,
        }
    )
    meta["calibration"] = {
        "version": calibration.version,
        "created_at": calibration.created_at.isoformat(),
        "residual_px": round(calibration.residual_px, 4),
        "mm_per_px": {v: round(calibration.mm_per_px[v], 6) for v in VIEWS},
    }
    meta["cameras"] = {
        view: {
            "serial": analysis.frame.serial,
            "timestamp": analysis.frame.timestamp.isoformat(),
            "exposure_us": analysis.frame.exposure_us,
            "frame_flags": list(analysis.segmentation.frame_flags),
        }
        for view, analysis in inspection.views.items()
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "report": {"version": 1, "status": "original"},
        "sample": meta,
        "seeds": [seed_json(s, inspection) for s in inspection.seeds],
        "summary": summary_json(inspection, recipe),
        "files": dict(files or {}),
    }
