"""Pools of unlabelled seeds, and the labelled ones as training crops.

A pool item is one physical seed: from the database, a stored seed with the crops
of its top and bottom views, cut again from the stored captures; from a folder,
one image file with one crop. Labelled items come back from the labelling tables
as a `CropSet` for the classifier builder, each view its own crop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from sqlalchemy import select

from appliance.crops import cut_crop, ready_crop
from appliance.imageio import ImageFileError, read_rgb
from appliance.segmentation import SeedRegion, segment
from appliance.store import Database, ImageStore, get_sample, list_samples
from appliance.store.labelling import labelled_seed_ids, training_labels
from appliance.store.models import Seed
from models.classifier.data import IMAGE_SUFFIXES, CropSet, DatasetError

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

#: A stored box and a re-found region must overlap this much to be one seed.
_MIN_IOU = 0.5


@dataclass(frozen=True, eq=False)
class Pool:
    """Unlabelled seeds with their crops.

    Attributes
    ----------
    top : (N, S, S, 3) uint8 ndarray
        The crop of each item (its top view for stored seeds).
    bottom : (N, S, S, 3) uint8 ndarray
        The bottom view's crop; black where there is none (see `has_bottom`).
    has_bottom : (N,) bool ndarray
    seed_ids : list of int or None
        Stored seed ids (database pools).
    sources : list of str or None
        Image files (folder pools).
    description : str
        Where the pool came from.
    """

    top: NDArray[np.uint8]
    bottom: NDArray[np.uint8]
    has_bottom: NDArray[np.bool_]
    seed_ids: list[int | None]
    sources: list[str | None]
    description: str

    def __len__(self) -> int:
        return len(self.top)


def _empty_pool(size: int, description: str) -> Pool:
    crops = np.zeros((0, size, size, 3), np.uint8)
    return Pool(crops, crops.copy(), np.zeros(0, bool), [], [], description)


def folder_pool(
    root: Path,
    *,
    size: int,
    ready: bool = False,
    side_px: float | None = None,
    margin: float = 1.15,
    exclude: set[str] | None = None,
    progress: Progress | None = None,
) -> Pool:
    """Return every image under `root` (any depth) as an unlabelled item.

    Raises
    ------
    DatasetError
        If `root` is not a folder or holds no images.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"pool folder {root} does not exist")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and str(p.resolve()) not in (exclude or ())
    )
    if not files:
        raise DatasetError(f"pool folder {root} holds no new images")
    crops, sources = [], []
    for i, path in enumerate(files):
        try:
            rgb = read_rgb(path)
        except ImageFileError as exc:
            log.warning("skipping %s: %s", path, exc)
            continue
        if ready:
            crops.append(ready_crop(rgb, size=size, margin=margin, side_px=side_px))
        else:
            seeds = [r for r in segment(rgb).seeds if not r.flags]
            if not seeds:
                log.warning("skipping %s: no clean seed found", path)
                continue
            largest = max(seeds, key=lambda r: r.area_px)
            crops.append(cut_crop(rgb, largest, size=size, margin=margin))
        sources.append(str(path.resolve()))
        if progress:
            progress(i + 1, len(files))
    if not crops:
        return _empty_pool(size, str(root))
    top = np.stack(crops)
    return Pool(
        top,
        np.zeros_like(top),
        np.zeros(len(top), bool),
        [None] * len(top),
        list[str | None](sources),
        str(root),
    )


def database_pool(
    db: Database,
    images: ImageStore,
    *,
    size: int,
    margin: float = 1.15,
    recipe: str | None = None,
    max_samples: int | None = None,
    progress: Progress | None = None,
) -> Pool:
    """Return the stored seeds that have no label yet, both views cut again.

    Each stored capture is segmented again and each seed's region found by the
    overlap of its stored box, so the crops are cut as at inspection.

    # Limitation: crops are cut from the stored raw captures; inspection cuts
    # them after the rig calibration's flat-field and white-balance correction,
    # so colours differ slightly from the crops the classifier saw at inspection.
    """
    labelled = labelled_seed_ids(db)
    listing = [s for s in list_samples(db) if recipe is None or s.recipe == recipe]
    listing = listing[:max_samples] if max_samples else listing
    tops, bottoms, has_bottom, ids = [], [], [], []
    for n, entry in enumerate(listing):
        sample = get_sample(db, entry.id)
        regions = {}
        for capture in sample.captures:
            rgb = images.read_image(capture.image_sha256)
            regions[capture.view] = segment(rgb).regions, rgb
        seed_ids = _seed_ids(db, sample.id)
        for seed in sample.seeds:
            seed_id = seed_ids[seed.index]
            if seed_id in labelled:
                continue
            crop = {}
            for view, bbox in (("top", seed.top_bbox), ("bottom", seed.bottom_bbox)):
                if bbox is None or view not in regions:
                    continue
                found, rgb = regions[view]
                region = _region_at(found, bbox)
                if region is not None:
                    crop[view] = cut_crop(rgb, region, size=size, margin=margin)
            if not crop:
                continue
            first = crop.get("top", crop.get("bottom"))
            assert first is not None
            tops.append(first)
            second = crop.get("bottom") if "top" in crop else None
            bottoms.append(second if second is not None else np.zeros_like(first))
            has_bottom.append(second is not None)
            ids.append(seed_id)
        if progress:
            progress(n + 1, len(listing))
    if not tops:
        return _empty_pool(size, "database")
    return Pool(
        np.stack(tops),
        np.stack(bottoms),
        np.array(has_bottom),
        list[int | None](ids),
        [None] * len(ids),
        f"database ({len(listing)} samples)",
    )


def _seed_ids(db: Database, sample_id: int) -> dict[int, int]:
    """Return the database id of each seed of a sample, by its index."""
    with db.session() as session:
        rows = session.execute(
            select(Seed.index, Seed.id).where(Seed.sample_id == sample_id)
        ).all()
    return {int(index): int(seed_id) for index, seed_id in rows}


def _region_at(regions: Sequence[SeedRegion], bbox: Sequence[int]) -> SeedRegion | None:
    """Return the region whose box overlaps the stored ``[x, y, w, h]`` box most."""
    x, y, w, h = (int(v) for v in bbox[:4])
    best, best_iou = None, _MIN_IOU
    for region in regions:
        r0, c0, r1, c1 = region.bbox
        ix = max(0, min(c1, x + w) - max(c0, x))
        iy = max(0, min(r1, y + h) - max(r0, y))
        inter = ix * iy
        union = (r1 - r0) * (c1 - c0) + w * h - inter
        iou = inter / union if union else 0.0
        if iou > best_iou:
            best, best_iou = region, iou
    return best


def pool_log_probs(
    top: torch.Tensor, bottom: torch.Tensor | None, has_bottom: NDArray[np.bool_]
) -> torch.Tensor:
    """Per-seed log probabilities per draw from its views', (N, K, C).

    A seed seen from both sides gets, in each draw, the mean of its two views'
    probabilities.

    # Limitation: inspection fuses the views by the defect-first rule of
    # `appliance.fusion`; the mean keeps the draws' joint structure simple but
    # is less sure of one-sided defects than the fused verdict.
    """
    if bottom is None or not has_bottom.any():
        return top
    mask = torch.from_numpy(has_bottom)
    mixed = torch.logsumexp(torch.stack([top, bottom]), dim=0) - np.log(2.0)
    return torch.where(mask[:, None, None], mixed, top)


def labelled_crops(db: Database, images: ImageStore, classes: Sequence[str]) -> CropSet:
    """Return every labelled item's crops as training data, each view a crop.

    Raises
    ------
    DatasetError
        If nothing is labelled, or a label is not one of `classes`.

    # Limitation: a seed is labelled as a whole, so both of its views get the
    # seed's class, though a defect may show on one side only.
    """
    labels = training_labels(db)
    if not labels:
        raise DatasetError(
            "no labelled seeds in the database; label a round in the annotation "
            "screen first"
        )
    unknown = sorted({r.label for r in labels} - set(classes))
    if unknown:
        raise DatasetError(f"labels {unknown} are not among the classes {classes}")
    crops, y, groups, who = [], [], [], []
    for n, record in enumerate(labels):
        for sha in (record.top_crop_sha256, record.bottom_crop_sha256):
            if sha is None:
                continue
            crops.append(images.read_image(sha))
            y.append(classes.index(record.label))
            groups.append(n)
        who.append(record.labelled_by)
    size = crops[0].shape[0]
    return CropSet(
        np.stack(crops).astype(np.uint8),
        np.array(y, np.int64),
        tuple(classes),
        np.array(groups, np.int64),
        np.array(groups, np.int64),
        np.array(y, np.int64),
        (),
        {
            "kind": "database",
            "labelled_seeds": len(labels),
            "crops": len(crops),
            "size": size,
            "labelled_by": sorted(set(who)),
        },
    )


def database_training_crops(classes: Sequence[str] | None = None) -> CropSet:
    """Return the labelled seeds of the settings' database as training crops.

    The classes are those of the newest labelling round unless given.
    """
    from appliance.settings import Settings
    from appliance.store import list_rounds

    settings = Settings.load()
    with Database.open(settings.database_url) as db:
        if classes is None:
            rounds = list_rounds(db)
            if not rounds:
                raise DatasetError(
                    "the database has no labelling rounds; choose seeds with "
                    "`seedqa-models active select` and label them first"
                )
            classes = rounds[-1].classes
        return labelled_crops(db, ImageStore(settings.images_dir), classes)
