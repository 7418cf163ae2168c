"""A sample's report as plain data: the JSON others' tools read.

The layout is documented in ``docs/report-schema.md`` and versioned by
`SCHEMA_VERSION`; a change that removes or renames a key raises the version.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from appliance.inspection import Inspection, SeedObservation
from appliance.matching import BOTTOM_ONLY, TOP_ONLY
from appliance.segmentation import SeedRegion

SCHEMA_VERSION = 1


def region_json(region: SeedRegion | None) -> dict[str, Any] | None:
    """One view of a seed: label, bounding box (x, y, w, h), area and centre."""
    if region is None:
        return None
    r0, c0, r1, c1 = region.bbox
    return {
        "label": region.label,
        "bbox": [c0, r0, c1 - c0, r1 - r0],
        "area_px": region.area_px,
        "centroid_px": [round(region.centroid[1], 2), round(region.centroid[0], 2)],
        "flags": list(region.flags),
    }


def seed_json(seed: SeedObservation) -> dict[str, Any]:
    """One physical seed of the report."""
    return {
        "index": seed.index,
        "top": region_json(seed.pair.top),
        "bottom": region_json(seed.pair.bottom),
        "area_mm2": round(seed.area_mm2, 2),
        "flags": list(seed.flags),
    }


def summary_json(inspection: Inspection) -> dict[str, Any]:
    """Count the sample's seeds by pairing and flag."""
    seeds = inspection.seeds
    flags = Counter(flag for seed in seeds for flag in seed.flags)
    return {
        "n_seeds": len(seeds),
        "n_paired": sum(
            TOP_ONLY not in s.flags and BOTTOM_ONLY not in s.flags for s in seeds
        ),
        "n_top_only": flags.get(TOP_ONLY, 0),
        "n_bottom_only": flags.get(BOTTOM_ONLY, 0),
        "flag_counts": dict(sorted(flags.items())),
    }


def sample_report(
    *,
    sample: Mapping[str, Any],
    inspection: Inspection,
    files: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build the whole report of one sample.

    Parameters
    ----------
    sample : dict
        ``id``, ``lot``, ``code``, ``recipe``, ``operator``, ``captured_at``, ``rig``.
    inspection : Inspection
        What was measured.
    files : dict, optional
        Paths of files written with the report (overlays), by name.
    """
    calibration = inspection.calibration
    meta = dict(sample)
    if isinstance(meta.get("captured_at"), datetime):
        meta["captured_at"] = meta["captured_at"].isoformat()
    meta["calibration"] = {
        "version": calibration.version,
        "created_at": calibration.created_at.isoformat(),
        "residual_px": round(calibration.residual_px, 4),
    }
    meta["cameras"] = {
        view: {
            "serial": analysis.frame.serial,
            "timestamp": analysis.frame.timestamp.isoformat(),
            "exposure_us": analysis.frame.exposure_us,
        }
        for view, analysis in inspection.views.items()
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "sample": meta,
        "seeds": [seed_json(s) for s in inspection.seeds],
        "summary": summary_json(inspection),
        "files": dict(files or {}),
    }
