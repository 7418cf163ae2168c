"""Images for the flow: handwritten digits, seed crops from a folder or the rig.

Every source returns an `ImageSet` of (N, C, S, S) uint8 arrays, channels first.
Nothing is downloaded: the digits are the 8x8 set bundled with scikit-learn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from appliance.crops import ready_crop
from appliance.imageio import ImageFileError, read_rgb
from models.classifier.data import IMAGE_SUFFIXES, DatasetError

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images with class labels.

    Attributes
    ----------
    images : (N, C, S, S) uint8 ndarray
    labels : (N,) int64 ndarray
        Index into `classes`.
    classes : tuple of str
    source : dict
        How the set was made, stored with a trained model.
    """

    images: NDArray[np.uint8]
    labels: NDArray[np.int64]
    classes: tuple[str, ...]
    source: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: NDArray[np.integer]) -> ImageSet:
        """Return the images at `index`."""
        return ImageSet(
            self.images[index], self.labels[index], self.classes, dict(self.source)
        )

    def of_classes(self, names: Sequence[str]) -> ImageSet:
        """Return the images of the classes `names`.

        Raises
        ------
        DatasetError
            If a name is not one of `classes`.
        """
        unknown = [n for n in names if n not in self.classes]
        if unknown:
            raise DatasetError(
                f"classes {unknown} are not in the data (its classes: "
                f"{list(self.classes)})"
            )
        keep = np.isin(self.labels, [self.classes.index(n) for n in names])
        return self.subset(np.flatnonzero(keep))


def digits(*, size: int = 16) -> ImageSet:
    """Return scikit-learn's bundled 8x8 digits, upsampled to `size`, grey.

    The 1797 images have 17 grey levels (0-16); they are scaled to 0-255 and
    resized with bilinear interpolation.

    Raises
    ------
    DatasetError
        If scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DatasetError(
            "the digits come with scikit-learn, which is not installed; "
            "pip install scikit-learn, or train on an image folder (--data)"
        ) from exc
    bunch = load_digits()
    small = (bunch.images * (255.0 / 16.0)).astype(np.float32)
    big = np.stack(
        [cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR) for im in small]
    )
    images = np.clip(np.rint(big), 0, 255).astype(np.uint8)[:, None]
    return ImageSet(
        images,
        bunch.target.astype(np.int64),
        tuple(str(d) for d in range(10)),
        {"kind": "digits", "size": size},
    )


def folder_images(
    root: Path,
    *,
    size: int,
    classes: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> ImageSet:
    """Read single-seed photographs masked on black, ``root/<class>/*``, as crops.

    Each image is cut as the appliance cuts ready crops (`ready_crop`): the seed
    turned upright and scaled to fill `size` pixels.

    Parameters
    ----------
    root : Path
        The folder; each sub-folder is a class.
    size : int
        Crop side, pixels.
    classes : sequence of str, optional
        Read only these class folders (default: all).

    Raises
    ------
    DatasetError
        If the folder or a class folder is missing, or holds no images.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    names = tuple(classes) if classes else tuple(found)
    missing = [n for n in names if n not in found]
    if missing:
        raise DatasetError(
            f"{root} has no class folders {missing} (it has {found}); "
            f"expected the layout DIR/<class>/*.png"
        )
    files = [
        (path, k)
        for k, name in enumerate(names)
        for path in sorted((root / name).iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise DatasetError(f"{root} holds no images ({', '.join(IMAGE_SUFFIXES)})")

    images, labels = [], []
    for i, (path, k) in enumerate(files):
        try:
            crop = ready_crop(read_rgb(path), size=size)
        except ImageFileError as exc:
            log.warning("skipping %s: %s", path, exc)
            continue
        images.append(crop.transpose(2, 0, 1))
        labels.append(k)
        if progress and ((i + 1) % 100 == 0 or i + 1 == len(files)):
            progress(i + 1, len(files))
    log.info("read %d crops of %s from %s", len(images), list(names), root)
    return ImageSet(
        np.stack(images),
        np.array(labels, np.int64),
        names,
        {"kind": "folder", "path": str(root), "classes": list(names), "size": size},
    )


def simulated_images(
    n_samples: int, *, size: int, seed: int = 0, progress: Progress | None = None
) -> ImageSet:
    """Render samples on the simulated rig and cut every seed as a crop.

    The crops are those the classifier trains on (`simulated_crops`): maize
    kernels of both views, labelled with the condition each view shows.
    """
    from models.classifier.data import simulated_crops

    crops = simulated_crops(n_samples, size=size, seed=seed, progress=progress)
    return ImageSet(
        np.ascontiguousarray(crops.crops.transpose(0, 3, 1, 2)),
        crops.labels,
        crops.classes,
        {"kind": "simulated", "samples": n_samples, "seed": seed, "size": size},
    )


def held_out_split(
    n: int, *, fraction: float, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return shuffled (training, held-out) indices of `n` items.

    Raises
    ------
    ValueError
        If `fraction` is not in [0, 1) or leaves no training item.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the held-out fraction must be in [0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(n)
    held = int(round(fraction * n))
    if n - held < 1:
        raise ValueError(f"{n} images leave none to train on after holding out {held}")
    return np.sort(order[held:]), np.sort(order[:held])
