"""Training data for the classifier: crops cut by the appliance's own segmentation.

Two sources: samples rendered by the simulated rig (labelled by its ground truth)
and image folders in torchvision's ImageFolder layout, ``DIR/<class>/*.png|jpg``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from appliance.crops import cut_crop, ready_crop
from appliance.imageio import ImageFileError, read_rgb
from appliance.segmentation import BORDER, segment
from calibration import estimate_flat_field
from drivers.kernels import CONDITIONS
from drivers.scene import Appearance, SampleSpec
from drivers.simulated import SimulatedBench

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

#: Class shares of simulated training samples: defects over-represented.
TRAINING_MIX = {"pure": 0.4, "broken": 0.2, "discolored": 0.2, "silkcut": 0.2}


class DatasetError(ValueError):
    """A dataset folder is missing, empty or not in the expected layout."""


@dataclass(frozen=True, eq=False)
class CropSet:
    """Crops with labels.

    Attributes
    ----------
    crops : (N, S, S, 3) uint8 ndarray
    labels : (N,) int ndarray
        Index into `classes`.
    classes : tuple of str
    groups : (N,) int ndarray
        Which sample or source image each crop comes from (for splits that keep a
        sample's crops together).
    kernels : (N,) int ndarray
        Physical seed id within the set (-1 when unknown), so views can be fused.
    truth : (N,) int ndarray
        The physical seed's own class (what fusing both views should find).
    source : dict
        How the set was made, for the bundle's ``trained_on``.
    """

    crops: NDArray[np.uint8]
    labels: NDArray[np.int64]
    classes: tuple[str, ...]
    groups: NDArray[np.int64]
    kernels: NDArray[np.int64]
    truth: NDArray[np.int64]
    views: tuple[str, ...] = ()
    source: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: NDArray[np.integer]) -> CropSet:
        """Return the crops at `index`."""
        return CropSet(
            self.crops[index],
            self.labels[index],
            self.classes,
            self.groups[index],
            self.kernels[index],
            self.truth[index],
            tuple(self.views[i] for i in index) if self.views else (),
            dict(self.source),
        )

    def counts(self) -> dict[str, int]:
        """Crops per class."""
        return {c: int((self.labels == i).sum()) for i, c in enumerate(self.classes)}


Progress = Callable[[int, int], None]


def simulated_crops(
    n_samples: int,
    *,
    size: int,
    seed: int = 0,
    kernels_per_sample: int = 200,
    mix: dict[str, float] | None = None,
    margin: float = 1.15,
    progress: Progress | None = None,
) -> CropSet:
    """Render samples on the simulated rig and cut every seed of both views.

    Clumps and specks are left out; seeds cut by the image border are kept.

    Each sample has its own random light, colour cast, focus and noise, and its
    own flat field from a blank capture, as a real rig recalibrated now and then.
    A view is labelled with the kernel's condition when it shows the defect, and
    ``pure`` when the defect is on the other side.
    """
    classes = CONDITIONS
    crops, labels, groups, kernels, truth, views = [], [], [], [], [], []
    spec = SampleSpec(
        n_kernels=kernels_per_sample,
        mix=dict(mix or TRAINING_MIX),  # type: ignore[arg-type]
    )
    for s in range(n_samples):
        sample_seed = seed * 1000 + s
        rng = np.random.default_rng(sample_seed)
        bench = SimulatedBench(appearance=Appearance.random(rng), seed=sample_seed)
        blank = bench.clear(seed=sample_seed)
        scene = bench.lay_sample(spec, seed=sample_seed)
        assert scene.truth is not None
        for view in ("top", "bottom"):
            flat = estimate_flat_field(blank.images[view])
            image = flat.apply(scene.images[view])
            truth_labels = scene.truth.labels[view]
            for region in segment(image).regions:
                # Seeds cut by the frame are kept: the model must learn that a
                # straight cut edge is not a break.
                if set(region.flags) - {BORDER}:
                    continue
                r0, c0, r1, c1 = region.bbox
                hits = truth_labels[r0:r1, c0:c1][region.mask]
                hits = hits[hits > 0]
                if hits.size < 0.8 * region.area_px:
                    continue
                k = int(np.bincount(hits).argmax()) - 1
                kernel = scene.truth.kernels[k]
                shows = kernel.shows_top if view == "top" else kernel.shows_bottom
                label = kernel.condition if shows else "pure"
                crops.append(cut_crop(image, region, size=size, margin=margin))
                labels.append(classes.index(label))
                truth.append(classes.index(kernel.condition))
                groups.append(s)
                kernels.append(s * 10_000 + k)
                views.append(view)
        if progress:
            progress(s + 1, n_samples)
    log.info("simulated %d samples: %d crops", n_samples, len(crops))
    return CropSet(
        np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8),
        np.array(labels, np.int64),
        classes,
        np.array(groups, np.int64),
        np.array(kernels, np.int64),
        np.array(truth, np.int64),
        tuple(views),
        {
            "kind": "simulated",
            "samples": n_samples,
            "kernels_per_sample": kernels_per_sample,
            "seed": seed,
            "mix": dict(mix or TRAINING_MIX),
        },
    )


def folder_crops(
    root: Path,
    *,
    size: int,
    ready: bool = False,
    classes: Sequence[str] | None = None,
    margin: float = 1.15,
    side_px: float | None = None,
    progress: Progress | None = None,
) -> CropSet:
    """Crops from an image folder, ``root/<class>/*``.

    Parameters
    ----------
    root : Path
        The folder; each sub-folder is a class.
    size : int
        Crop side, pixels.
    ready : bool
        The images are single seeds already masked on black (cropped ready); else
        each image is segmented and its largest clean seed cut as in production.
    classes : sequence of str, optional
        The class order to use (a folder may hold a subset of them); by default
        the sorted sub-folder names.
    side_px : float, optional
        For ready crops: cut a fixed side of each photograph (see `ready_crop`).

    Raises
    ------
    DatasetError
        If the folder does not exist, has no class folders, or a class folder is
        not one of `classes`.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not found:
        raise DatasetError(
            f"{root} has no class folders; expected the layout DIR/<class>/*.png"
        )
    order = tuple(classes) if classes is not None else tuple(found)
    unknown = [c for c in found if c not in order]
    if unknown:
        raise DatasetError(
            f"{root} has class folders {unknown} that the model does not know "
            f"(its classes: {list(order)})"
        )
    files = [
        (path, order.index(name))
        for name in found
        for path in sorted((root / name).iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise DatasetError(f"{root} holds no images ({', '.join(IMAGE_SUFFIXES)})")

    crops, labels, skipped = [], [], 0
    for i, (path, label) in enumerate(files):
        try:
            crop = _crop_file(
                path, size=size, ready=ready, margin=margin, side_px=side_px
            )
        except ImageFileError as exc:
            log.warning("skipping %s: %s", path, exc)
            crop = None
        if crop is None:
            skipped += 1
        else:
            crops.append(crop)
            labels.append(label)
        if progress and (i + 1) % 100 == 0:
            progress(i + 1, len(files))
    if skipped:
        log.warning(
            "%d of %d images in %s had no usable seed", skipped, len(files), root
        )
    n = len(labels)
    return CropSet(
        np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8),
        np.array(labels, np.int64),
        order,
        np.arange(n, dtype=np.int64),
        np.full(n, -1, np.int64),
        np.array(labels, np.int64),
        (),
        {
            "kind": "folder",
            "path": str(root),
            "ready_crops": ready,
            "ready_side_px": side_px,
            "images": n,
        },
    )


def _crop_file(
    path: Path, *, size: int, ready: bool, margin: float, side_px: float | None
) -> NDArray[np.uint8] | None:
    rgb = read_rgb(path)
    if ready:
        return ready_crop(rgb, size=size, margin=margin, side_px=side_px)
    seeds = [r for r in segment(rgb).seeds if not r.flags]
    if not seeds:
        return None
    largest = max(seeds, key=lambda r: r.area_px)
    return cut_crop(rgb, largest, size=size, margin=margin)


def split_by_group(
    data: CropSet, *, fraction: float, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return indices of a training and a held-out part, whole groups to one side.

    For folders every image is its own group, stratified by class so each class
    keeps about `fraction` of its images held out.
    """
    rng = np.random.default_rng(seed)
    held: list[int] = []
    if data.source.get("kind") == "folder":
        for c in range(len(data.classes)):
            idx = np.flatnonzero(data.labels == c)
            rng.shuffle(idx)
            held.extend(idx[: int(round(fraction * len(idx)))].tolist())
    else:
        groups = np.unique(data.groups)
        rng.shuffle(groups)
        n_held = max(1, int(round(fraction * len(groups))))
        held = np.flatnonzero(np.isin(data.groups, groups[:n_held])).tolist()
    mask = np.zeros(len(data), bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)
