"""Seeds from one image of seeds on a plain light background.

The plate's light is modelled from the image itself, each pixel's darkening against
it is thresholded, and touching seeds are split by a marker-controlled watershed on
the distance transform. The typical seed size is estimated from the image, so no
setting depends on the species or the scale. Watershed runs only inside the blobs
that look like more than one seed, which is what makes it fast on a 5 MP frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
from numpy.typing import NDArray
from skimage.segmentation import watershed

log = logging.getLogger(__name__)

#: Region flags.
BORDER = "border"  # cut by the image border
CLUMP = "clump"  # too large to be one seed, and could not be split
SPECK = "speck"  # too small to be a seed (dust, a fragment)

#: Frame flags.
EMPTY = "empty"  # no seed found
OVEREXPOSED = "overexposed"  # mostly saturated
UNDEREXPOSED = "underexposed"  # mostly black
LOW_CONTRAST = "low_contrast"  # no usable difference between seeds and plate
FATAL_FRAME_FLAGS = frozenset({OVEREXPOSED, UNDEREXPOSED, LOW_CONTRAST})

#: Images narrower than this are refused (the camera contract's minimum too).
MIN_SIDE_PX = 16

#: Blobs smaller than this are sensor noise or dust at any scale, pixels.
MIN_AREA_PX = 30


class InvalidImage(ValueError):
    """The array is not an image this module can segment."""


@dataclass(frozen=True, eq=False)
class SeedRegion:
    """One seed (or what looks like one) in an image.

    Attributes
    ----------
    label : int
        Its value in `Segmentation.labels` (1, 2, ...).
    bbox : (row0, col0, row1, col1)
        Bounding box in pixels, end exclusive.
    mask : (row1 - row0, col1 - col0) bool ndarray
        The seed's pixels inside `bbox`.
    area_px : int
        Number of pixels.
    centroid : (row, col)
        Centre of mass in pixels.
    major_px, minor_px : float
        Axis lengths of the ellipse with the same second moments, pixels.
    orientation_rad : float
        Angle of the major axis from the image x axis, radians.
    flags : tuple of str
        `BORDER`, `CLUMP` and/or `SPECK`; empty for a clean seed.
    """

    label: int
    bbox: tuple[int, int, int, int]
    mask: NDArray[np.bool_]
    area_px: int
    centroid: tuple[float, float]
    major_px: float
    minor_px: float
    orientation_rad: float
    flags: tuple[str, ...] = ()

    @property
    def is_seed(self) -> bool:
        """Whether the region counts as a seed (everything but specks)."""
        return SPECK not in self.flags


@dataclass(frozen=True, eq=False)
class Segmentation:
    """The seeds found in one image.

    Attributes
    ----------
    labels : (H, W) uint16 ndarray
        0 for background, k for `regions[k - 1]`.
    regions : list of SeedRegion
        Every region, specks included.
    frame_flags : tuple of str
        Problems with the whole frame (`EMPTY`, `OVEREXPOSED`, ...).
    seed_area_px : float
        The estimated area of one typical seed, pixels (0 when none was found).
    """

    labels: NDArray[np.uint16]
    regions: list[SeedRegion]
    frame_flags: tuple[str, ...]
    seed_area_px: float

    @property
    def seeds(self) -> list[SeedRegion]:
        """The regions that count as seeds."""
        return [r for r in self.regions if r.is_seed]

    @property
    def usable(self) -> bool:
        """False when the frame itself is unfit to be measured."""
        return not FATAL_FRAME_FLAGS.intersection(self.frame_flags)


def as_rgb8(image: NDArray[np.generic]) -> NDArray[np.uint8]:
    """Check an image and convert it to (H, W, 3) uint8 RGB.

    Accepts (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, as uint8, uint16 (scaled
    by 1/257) or floats in [0, 1].

    Raises
    ------
    InvalidImage
        With what was received and what is expected.
    """
    if not isinstance(image, np.ndarray):
        raise InvalidImage(f"expected a numpy array, got {type(image).__name__}")
    if image.ndim == 2:
        image = image[..., None].repeat(3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise InvalidImage(
            f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {image.shape}"
        )
    if min(image.shape[:2]) < MIN_SIDE_PX:
        raise InvalidImage(
            f"image of {image.shape[1]}x{image.shape[0]} px is too small"
        )
    image = image[..., :3]
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if image.dtype == np.uint16:
        return (image // 257).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)):
            raise InvalidImage("float image holds NaN or infinite values")
        # np.issubdtype does not narrow the array's type for mypy.
        floats = cast(NDArray[np.floating], image)
        return np.clip(floats * 255 + 0.5, 0, 255).astype(np.uint8)
    raise InvalidImage(f"expected uint8, uint16 or float pixels, got {image.dtype}")


def thumbnail(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Shrink an image to one eighth of its size, by area averaging."""
    h, w = rgb.shape[:2]
    size = (max(w // 8, 1), max(h // 8, 1))
    return _uint8(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))


def frame_quality(small: NDArray[np.uint8]) -> tuple[str, ...]:
    """Flag frames unfit to measure: saturated, black, or flat.

    Parameters
    ----------
    small : (h, w, 3) uint8 ndarray
        The frame's `thumbnail` (or the frame itself).
    """
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    flags = []
    if np.mean(small.max(axis=2) >= 250) > 0.9:
        flags.append(OVEREXPOSED)
    elif np.mean(grey < 25) > 0.9:
        flags.append(UNDEREXPOSED)
    elif float(grey.std()) < 2.0:
        flags.append(LOW_CONTRAST)
    return tuple(flags)


def plate_light(small: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Estimate the empty plate's brightness under the seeds, per channel.

    Background pixels (brighter than Otsu's threshold, away from seeds) are averaged
    with a wide Gaussian by normalised convolution, so light falloff and colour cast
    are followed without knowing the seed size.

    Parameters
    ----------
    small : (h, w, 3) uint8 ndarray
        The frame's `thumbnail`.

    Returns
    -------
    (h, w, 3) float32 ndarray
        The plate's light at the thumbnail's resolution, in grey levels.
    """
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    # The plate is what is nearly as bright as its neighbourhood's brightest: a
    # local test, so light falloff across the plate is not mistaken for seeds.
    size = max(small.shape[:2]) // 8 | 1
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    envelope = cv2.GaussianBlur(
        cv2.dilate(grey, disc).astype(np.float32), (0, 0), size / 2
    )
    plate = (grey > 0.85 * envelope).astype(np.uint8)
    plate = _uint8(cv2.erode(plate, np.ones((3, 3), np.uint8)))
    sigma = max(small.shape[:2]) / 16
    weight = cv2.GaussianBlur(plate.astype(np.float32), (0, 0), sigma) + 1e-6
    light = np.empty(small.shape, np.float32)
    for c in range(3):
        masked = small[..., c].astype(np.float32) * plate
        light[..., c] = cv2.GaussianBlur(masked, (0, 0), sigma) / weight
    # Far from any visible plate (a frame full of seeds), use the plate's median.
    fallback = np.median(small[plate.astype(bool)], axis=0) if plate.any() else 255
    light[weight < 0.05] = fallback
    return np.maximum(light, 1.0)


def darkening(
    rgb: NDArray[np.uint8], small: NDArray[np.uint8] | None = None
) -> NDArray[np.uint8]:
    """How much each pixel absorbs against the plate: 0 (plate) to 255 (black).

    The largest relative darkening over the three channels, so a yellow seed
    counts by its blue channel and a dark seed by all of them.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 ndarray
        The frame.
    small : (H / 8, W / 8, 3) uint8 ndarray, optional
        Its `thumbnail`, when already made.

    Returns
    -------
    (H, W) uint8 ndarray
    """
    h, w = rgb.shape[:2]
    small = thumbnail(rgb) if small is None else small
    light = np.clip(plate_light(small) + 0.5, 1, 255).astype(np.uint8)
    light8 = cv2.resize(light, (w, h), interpolation=cv2.INTER_LINEAR)
    # Per channel brightness relative to the plate, 255 = as bright as the plate;
    # OpenCV's saturating uint8 arithmetic is several times faster than floats.
    relative = [cv2.divide(rgb[..., c], light8[..., c], scale=255) for c in range(3)]
    darkest = cv2.min(cv2.min(relative[0], relative[1]), relative[2])
    return _uint8(cv2.subtract(np.full_like(darkest, 255), darkest))


def segment(
    image: NDArray[np.generic],
    *,
    seed_area_px: float | None = None,
) -> Segmentation:
    """Find the seeds in an image of seeds on a plain light background.

    Parameters
    ----------
    image : (H, W) or (H, W, 3) ndarray
        Grey or RGB image, uint8, uint16 or float in [0, 1].
    seed_area_px : float, optional
        Area of one seed in pixels, when known (from the recipe and calibration);
        estimated from the image when omitted.

    Returns
    -------
    Segmentation
        Labels, regions with their flags, and frame flags.

    Raises
    ------
    InvalidImage
        If `image` is not an image (wrong type, shape or dtype).
    """
    rgb = as_rgb8(image)
    h, w = rgb.shape[:2]
    empty = np.zeros((h, w), np.uint16)

    small = thumbnail(rgb)
    flags = frame_quality(small)
    if flags:
        log.warning("frame %dx%d unfit to segment: %s", w, h, ", ".join(flags))
        return Segmentation(empty, [], flags, 0.0)

    dark = darkening(rgb, small)
    level, _ = cv2.threshold(dark, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # Otsu on a nearly empty plate splits the noise; a seed must stand clear of it.
    median, mad = _median_mad(dark[::4, ::4])
    noise = median + 8 * mad
    level = max(level, noise, 16.0)
    _, fg = cv2.threshold(dark, level, 1, cv2.THRESH_BINARY)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    # Closing bridges pale cracks across a seed; gaps between seeds are wider.
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    fg = _fill_holes(_uint8(fg))

    n, blobs, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    areas = cast(NDArray[np.int32], stats[1:, cv2.CC_STAT_AREA])
    areas = areas[areas >= MIN_AREA_PX]
    if seed_area_px is None:
        seed_area_px = estimate_seed_area(areas)
    if areas.size == 0 or seed_area_px <= 0:
        return Segmentation(empty, [], (EMPTY,), 0.0)

    labels = np.zeros((h, w), np.uint16)
    regions: list[SeedRegion] = []
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        at_border = x == 0 or y == 0 or x + bw == w or y + bh == h
        if area < max((0.005 if at_border else 0.05) * seed_area_px, MIN_AREA_PX):
            continue  # noise, not even a speck worth reporting
        roi = (slice(y, y + bh), slice(x, x + bw))
        blob = blobs[roi] == i
        pieces = [blob]
        if _looks_multiple(blob, seed_area_px):
            edge = np.zeros_like(blob)
            edge[0, :], edge[-1, :] = y == 0, y + bh == h
            edge[:, 0] |= x == 0
            edge[:, -1] |= x + bw == w
            pieces = _split(blob, seed_area_px, edge & blob)
        for piece in pieces:
            region = _region(len(regions) + 1, piece, (y, x), (h, w), seed_area_px)
            r0, c0, r1, c1 = region.bbox
            labels[r0:r1, c0:c1][region.mask] = region.label
            regions.append(region)

    frame_flags: tuple[str, ...] = () if any(r.is_seed for r in regions) else (EMPTY,)
    log.debug(
        "segmented %dx%d: %d regions, seed area %.0f px",
        w,
        h,
        len(regions),
        seed_area_px,
    )
    return Segmentation(labels, regions, frame_flags, float(seed_area_px))


def estimate_seed_area(areas: NDArray[np.integer]) -> float:
    """Typical area of one seed from the areas of all blobs, pixels.

    The median of the blobs that are not specks: most blobs on a plate are single
    seeds, so the median is robust to clumps and dust alike.
    """
    areas = np.asarray(areas, np.float64)
    areas = areas[areas >= MIN_AREA_PX]
    if areas.size == 0:
        return 0.0
    big = areas[areas >= 0.2 * np.median(areas)]
    return float(np.median(big))


def _median_mad(values: NDArray[np.uint8]) -> tuple[float, float]:
    """Median and median absolute deviation of 8-bit values, from histograms."""

    def hist_median(hist: NDArray[np.int64]) -> float:
        return float(np.searchsorted(np.cumsum(hist), hist.sum() / 2))

    hist = np.bincount(values.ravel(), minlength=256)
    median = hist_median(hist)
    deviation = np.abs(np.arange(256) - int(median))
    return median, hist_median(np.bincount(deviation, weights=hist, minlength=256))


def _fill_holes(mask: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Fill the holes of every blob (pale germs and endosperm inside a seed)."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled


def _looks_multiple(blob: NDArray[np.bool_], seed_area_px: float) -> bool:
    """Whether a blob may hold more than one seed: too big, or not convex enough."""
    area = int(blob.sum())
    if area > 1.4 * seed_area_px:
        return True
    if area < 0.8 * seed_area_px:
        return False
    contours, _ = cv2.findContours(
        blob.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))
    return area / max(cv2.contourArea(hull), 1.0) < 0.9


def _split(
    blob: NDArray[np.bool_], seed_area_px: float, on_border: NDArray[np.bool_]
) -> list[NDArray[np.bool_]]:
    """Split a blob of touching seeds by watershed on its distance transform.

    Markers are the distance maxima that stand out by a fifth of a typical seed's
    inscribed radius; pieces smaller than a third of a seed are merged back,
    unless the image border cut them (`on_border`: blob pixels on the border).
    """
    padded = np.pad(blob, 1).astype(np.uint8)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)
    dist = cv2.GaussianBlur(dist, (0, 0), 1.0)
    # Quarter-pixel steps in 16 bits: h-maxima on integers is much faster.
    height = np.round(dist * 4).astype(np.uint16)
    radius = np.sqrt(seed_area_px / np.pi) * 0.75
    peaks = _h_maxima(height, max(int(radius * 0.2 * 4), 4))
    n, markers = cv2.connectedComponents(peaks.astype(np.uint8), connectivity=8)
    if n <= 2:
        return [blob]

    inside = padded.astype(bool)
    live = set(range(1, n))
    while True:
        pieces = watershed(-height.astype(np.int32), markers, mask=inside)
        sizes = np.bincount(pieces.ravel(), minlength=n)
        cut = set(np.unique(pieces[1:-1, 1:-1][on_border]).tolist())
        small = [k for k in live if sizes[k] < seed_area_px / 3 and k not in cut]
        if not small or len(live) <= 1:
            break
        smallest = min(small, key=lambda k: sizes[k])
        markers[markers == smallest] = 0
        live.discard(smallest)
    if len(live) <= 1:
        return [blob]
    parts = [(pieces == k)[1:-1, 1:-1] for k in sorted(live)]
    return _merge_convex(parts)


def _solidity(mask: NDArray[np.bool_]) -> float:
    """Area over convex-hull area of the largest contour of a mask."""
    contours, _ = cv2.findContours(
        mask.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    if not contours:
        return 0.0
    hull = cv2.convexHull(np.concatenate(contours))
    return float(mask.sum()) / max(cv2.contourArea(hull), 1.0)


def _merge_convex(parts: list[NDArray[np.bool_]]) -> list[NDArray[np.bool_]]:
    """Undo splits that cut a convex shape: two touching seeds leave a waist.

    Adjacent pieces whose union is nearly convex were one seed whose distance
    ridge happened to dip; they are merged, most convex pair first.
    """
    kernel = np.ones((3, 3), np.uint8)
    while len(parts) > 1:
        best, pair = 0.93, None
        for i in range(len(parts)):
            grown = cv2.dilate(parts[i].view(np.uint8), kernel).view(bool)
            for j in range(i + 1, len(parts)):
                if not np.any(grown & parts[j]):
                    continue
                solidity = _solidity(parts[i] | parts[j])
                if solidity > best:
                    best, pair = solidity, (i, j)
        if pair is None:
            break
        i, j = pair
        parts[i] = parts[i] | parts[j]
        del parts[j]
    return parts


def _h_maxima(height: NDArray[np.uint16], h: int) -> NDArray[np.bool_]:
    """Maxima that stand at least `h` above their surroundings.

    Grey reconstruction by dilation of ``height - h`` under ``height``, run as
    repeated 3x3 dilations: on a blob-sized array this converges in a few dozen
    cheap steps, far faster than a general reconstruction.
    """
    ceiling = height.astype(np.int32)
    marker = np.maximum(ceiling - h, 0)
    kernel = np.ones((3, 3), np.uint8)
    ceiling_f = ceiling.astype(np.float32)
    marker_f = marker.astype(np.float32)
    while True:
        grown = cast(
            NDArray[np.float32], cv2.min(cv2.dilate(marker_f, kernel), ceiling_f)
        )
        if np.array_equal(grown, marker_f):
            break
        marker_f = grown
    return (ceiling_f - marker_f) >= h


def ellipse_axes(moments: dict[str, float]) -> tuple[float, float, float]:
    """Axes of the ellipse with a shape's second moments.

    Parameters
    ----------
    moments : dict
        ``cv2.moments`` of the shape's mask.

    Returns
    -------
    major_px, minor_px : float
        Full axis lengths, pixels.
    orientation_rad : float
        Angle of the major axis from the image x axis, radians.
    """
    area = moments["m00"]
    mu20, mu02, mu11 = (moments[k] / area for k in ("mu20", "mu02", "mu11"))
    common = np.sqrt(((mu20 - mu02) / 2) ** 2 + mu11**2)
    return (
        float(4 * np.sqrt(max((mu20 + mu02) / 2 + common, 0))),
        float(4 * np.sqrt(max((mu20 + mu02) / 2 - common, 0))),
        float(0.5 * np.arctan2(2 * mu11, mu20 - mu02)),
    )


def _region(
    label: int,
    piece: NDArray[np.bool_],
    origin: tuple[int, int],
    image_shape: tuple[int, int],
    seed_area_px: float,
) -> SeedRegion:
    """Properties and flags of one region, given as a mask placed at `origin`."""
    x, y, bw, bh = cv2.boundingRect(piece.view(np.uint8))
    mask = piece[y : y + bh, x : x + bw]
    r0, c0 = origin[0] + y, origin[1] + x
    r1, c1 = r0 + bh, c0 + bw
    m = cv2.moments(mask.view(np.uint8), binaryImage=True)
    area = int(round(m["m00"]))
    major, minor, angle = ellipse_axes(m)

    flags = []
    h, w = image_shape
    if r0 == 0 or c0 == 0 or r1 == h or c1 == w:
        flags.append(BORDER)
    if area < 0.3 * seed_area_px and BORDER not in flags:
        flags.append(SPECK)
    elif area > 2.0 * seed_area_px:
        flags.append(CLUMP)
    return SeedRegion(
        label=label,
        bbox=(r0, c0, r1, c1),
        mask=mask,
        area_px=area,
        centroid=(r0 + m["m01"] / m["m00"], c0 + m["m10"] / m["m00"]),
        major_px=major,
        minor_px=minor,
        orientation_rad=angle,
        flags=tuple(flags),
    )


def _uint8(image: cv2.typing.MatLike) -> NDArray[np.uint8]:
    """Type an OpenCV result computed from uint8 input as what it is."""
    return cast(NDArray[np.uint8], image)
