"""Scenes of the simulated rig: maize samples and targets on a lit plate.

The plate has its own frame in millimetres. Each camera maps plate points to image
pixels by a homography (its pose); the bottom camera looks up through the glass, so
its homography mirrors the plate. Renders come with ground truth: a label image per
view, each kernel's condition and which faces show it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import cast

import cv2
import numpy as np
from numpy.typing import NDArray

from drivers.base import VIEWS, View
from drivers.kernels import Condition, Kernel, random_kernel, render_face
from drivers.target import DotTarget

log = logging.getLogger(__name__)

#: Class shares of the default simulated sample (a lot of middling quality).
DEFAULT_MIX: dict[Condition, float] = {
    "pure": 0.70,
    "broken": 0.12,
    "discolored": 0.10,
    "silkcut": 0.08,
}


@dataclass(frozen=True)
class RigGeometry:
    """True poses of the simulated cameras.

    Attributes
    ----------
    image_size : (width, height)
        Sensor size in pixels.
    plate_to_top, plate_to_bottom : (3, 3) float ndarray
        Homographies from plate millimetres to each view's pixels.
    """

    image_size: tuple[int, int]
    plate_to_top: NDArray[np.float64]
    plate_to_bottom: NDArray[np.float64]

    def plate_to(self, view: View) -> NDArray[np.float64]:
        """Homography from plate millimetres to pixels of `view`."""
        return self.plate_to_top if view == "top" else self.plate_to_bottom

    @property
    def top_to_bottom(self) -> NDArray[np.float64]:
        """Homography from top-view pixels to bottom-view pixels."""
        h = self.plate_to_bottom @ np.linalg.inv(self.plate_to_top)
        return h / h[2, 2]

    @property
    def field_mm(self) -> tuple[float, float]:
        """Approximate plate area seen by the top camera, (width, height) in mm."""
        w, h = self.image_size
        corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
        mm = _apply(np.linalg.inv(self.plate_to_top), corners)
        return float(np.ptp(mm[:, 0])), float(np.ptp(mm[:, 1]))


def default_geometry(
    *,
    image_size: tuple[int, int] = (2448, 2048),
    px_per_mm: float = 10.0,
    seed: int = 0,
) -> RigGeometry:
    """Camera poses of a plausible rig: near-square-on, slightly rotated and tilted.

    Parameters
    ----------
    image_size : (width, height)
        Sensor size in pixels (2448 x 2048 is a common 5 MP machine-vision sensor).
    px_per_mm : float
        Nominal scale at the plate.
    seed : int
        Draws the small pose errors of each camera.
    """
    rng = np.random.default_rng(seed)
    w, h = image_size

    def pose(mirror: bool) -> NDArray[np.float64]:
        angle = np.deg2rad(rng.uniform(-2.0, 2.0))
        scale = px_per_mm * rng.uniform(0.98, 1.02)
        c, s = np.cos(angle) * scale, np.sin(angle) * scale
        flip = -1.0 if mirror else 1.0
        shift = rng.uniform(-3.0, 3.0, 2) * px_per_mm
        linear = np.array([[c * flip, -s, 0], [s * flip, c, 0], [0, 0, 1]])
        tilt = np.eye(3)
        tilt[2, :2] = rng.uniform(-2e-5, 2e-5, 2) / px_per_mm * 10
        centre = np.array(
            [[1, 0, w / 2 + shift[0]], [0, 1, h / 2 + shift[1]], [0, 0, 1]]
        )
        hmat = centre @ tilt @ linear
        return hmat / hmat[2, 2]

    return RigGeometry(image_size, pose(False), pose(True))


@dataclass(frozen=True)
class Appearance:
    """What a real rig varies between captures: light, colour cast, focus, noise."""

    plate_level: float = 0.92
    falloff: float = 0.18
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    blur_px: float = 0.8
    noise: float = 0.012
    shadow: float = 0.18
    shadow_offset_px: tuple[float, float] = (4.0, 5.0)
    #: Centre of each camera's light falloff, as fractions of width and height.
    falloff_centre: tuple[tuple[float, float], tuple[float, float]] = (
        (0.47, 0.53),
        (0.54, 0.46),
    )

    @classmethod
    def random(cls, rng: np.random.Generator) -> Appearance:
        """Draw a plausible appearance."""
        return cls(
            plate_level=float(rng.uniform(0.86, 0.95)),
            falloff=float(rng.uniform(0.05, 0.3)),
            tint=_three(rng.uniform(0.93, 1.05, 3)),
            blur_px=float(rng.uniform(0.5, 1.6)),
            noise=float(rng.uniform(0.005, 0.02)),
            shadow=float(rng.uniform(0.05, 0.3)),
            shadow_offset_px=(float(rng.uniform(-6, 6)), float(rng.uniform(-6, 6))),
            falloff_centre=(
                (float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.4, 0.6))),
                (float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.4, 0.6))),
            ),
        )


@dataclass(frozen=True)
class PlacedKernel:
    """A kernel and where it lies on the plate (centre in mm, angle in radians)."""

    kernel: Kernel
    centre_mm: tuple[float, float]
    angle_rad: float
    touching: bool

    def to_plate(self) -> NDArray[np.float64]:
        """(3, 3) affine map from kernel millimetres to plate millimetres."""
        c, s = np.cos(self.angle_rad), np.sin(self.angle_rad)
        x, y = self.centre_mm
        return np.array([[c, -s, x], [s, c, y], [0, 0, 1]])

    def outline_on_plate(self) -> NDArray[np.float64]:
        """(P, 2) outline in plate millimetres."""
        return _apply(self.to_plate(), self.kernel.outline_mm)


@dataclass(frozen=True)
class KernelTruth:
    """Ground truth of one kernel in a rendered sample."""

    index: int
    condition: Condition
    shows_top: bool
    shows_bottom: bool
    touching: bool
    centre_mm: tuple[float, float]
    area_mm2: float
    in_top: bool
    in_bottom: bool


@dataclass(frozen=True, eq=False)
class SampleTruth:
    """Ground truth of a rendered sample.

    Attributes
    ----------
    labels : dict of view to (H, W) uint16 ndarray
        0 for the plate, k + 1 for kernel k of `kernels`.
    kernels : list of KernelTruth
        One entry per kernel that is at least partly in one of the views.
    """

    labels: dict[View, NDArray[np.uint16]]
    kernels: list[KernelTruth]
    geometry: RigGeometry

    def to_json(self) -> dict[str, object]:
        """Plain-data form for JSON files (labels are written separately)."""
        return {
            "geometry": {
                "image_size": list(self.geometry.image_size),
                "plate_to_top": self.geometry.plate_to_top.tolist(),
                "plate_to_bottom": self.geometry.plate_to_bottom.tolist(),
            },
            "kernels": [k.__dict__ for k in self.kernels],
        }


@dataclass(frozen=True)
class SampleSpec:
    """What to lay on the plate.

    Attributes
    ----------
    n_kernels : int
        Number of kernels placed (some may fall partly outside the views).
    touching_fraction : float
        Share of kernels laid against a neighbour.
    mix : dict of Condition to float
        Class shares, normalised.
    edge_fraction : float
        Share of kernels laid across the edge of the top camera's field.
    """

    n_kernels: int = 200
    touching_fraction: float = 0.10
    mix: dict[Condition, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    edge_fraction: float = 0.03
    size_scale: float = 1.0


class PlacementError(RuntimeError):
    """The kernels asked for do not fit on the plate."""


def place_sample(
    spec: SampleSpec, geometry: RigGeometry, rng: np.random.Generator
) -> list[PlacedKernel]:
    """Lay kernels on the plate without overlaps, some touching, some on the edge.

    Kernels keep a gap of at least 1 mm, except the touching ones, which are slid
    against a neighbour until their outlines meet.

    Raises
    ------
    PlacementError
        If the plate area seen by the top camera cannot hold `spec.n_kernels`.
    """
    field_w, field_h = geometry.field_mm
    centre_px = np.array(geometry.image_size, np.float64)[None] / 2
    plate_centre = _apply(np.linalg.inv(geometry.plate_to_top), centre_px)[0]
    grid = _OccupancyGrid(plate_centre, (field_w + 30, field_h + 30))

    classes = list(spec.mix)
    probs = np.array([spec.mix[c] for c in classes], np.float64)
    probs /= probs.sum()
    n_edge = int(round(spec.edge_fraction * spec.n_kernels))
    # Each slid kernel makes a touching pair, so half the touching share is slid.
    n_touch = int(round(spec.touching_fraction * spec.n_kernels / 2))
    half = np.array([field_w, field_h]) / 2

    # Free kernels first, so the touching ones find untouched neighbours to lean on.
    n_free = spec.n_kernels - n_edge - n_touch
    roles = ["free"] * n_free + ["touch"] * n_touch + ["edge"] * n_edge
    placed: list[PlacedKernel] = []
    for i, role in enumerate(roles):
        condition = classes[int(rng.choice(len(classes), p=probs))]
        kernel = random_kernel(rng, condition, scale=spec.size_scale)
        on_edge = role == "edge"
        touch = role == "touch"
        for _attempt in range(500):
            angle = float(rng.uniform(0, 2 * np.pi))
            if touch:
                slid = _slide_against(rng, kernel, angle, placed, grid)
                if slid is not None:
                    pk, anchor = slid
                    placed[anchor - 1] = replace(placed[anchor - 1], touching=True)
                    break
                continue
            if on_edge:
                u = rng.uniform(-1, 1)
                side = int(rng.integers(0, 4))
                offset = np.asarray([(u, -1), (u, 1), (-1, u), (1, u)][side]) * half
            else:
                offset = rng.uniform(-1, 1, 2) * (half - 9)
            centre = plate_centre + offset
            pk = PlacedKernel(
                kernel, (float(centre[0]), float(centre[1])), angle, False
            )
            if grid.free_around(pk, gap_mm=1.0):
                break
        else:
            raise PlacementError(
                f"could not place kernel {i + 1} of {spec.n_kernels}: the plate field "
                f"of {field_w:.0f} x {field_h:.0f} mm is too crowded; ask for fewer "
                "kernels or smaller ones"
            )
        grid.add(pk, len(placed) + 1)
        placed.append(pk)
    return placed


class _OccupancyGrid:
    """Kernel footprints on a coarse plate raster (2 cells per mm), by label."""

    per_mm = 2.0

    def __init__(self, centre_mm: NDArray[np.float64], size_mm: tuple[float, float]):
        self.origin = centre_mm - np.asarray(size_mm) / 2
        w, h = (int(s * self.per_mm) + 1 for s in size_mm)
        self.labels = np.zeros((h, w), np.int32)

    def footprint(
        self, pk: PlacedKernel, grow_mm: float = 0.0
    ) -> tuple[NDArray[np.bool_], tuple[slice, slice]] | None:
        pts = (pk.outline_on_plate() - self.origin) * self.per_mm
        pad = int(np.ceil(grow_mm * self.per_mm)) + 1
        x0, y0 = np.floor(pts.min(axis=0)).astype(int) - pad
        x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + pad
        gh, gw = self.labels.shape
        if x0 < 0 or y0 < 0 or x1 > gw or y1 > gh:
            return None
        patch = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(patch, [np.round(pts - [x0, y0]).astype(np.int32)], 1)
        if grow_mm > 0:
            k = 2 * int(round(grow_mm * self.per_mm)) + 1
            patch = cv2.dilate(
                patch, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
            )
        return patch.astype(bool), (slice(y0, y1), slice(x0, x1))

    def free_around(self, pk: PlacedKernel, *, gap_mm: float, allow: int = 0) -> bool:
        """Whether `pk`, grown by `gap_mm`, meets no kernel other than `allow`."""
        fp = self.footprint(pk, gap_mm)
        if fp is None:
            return False
        mask, region = fp
        hits = self.labels[region][mask]
        return bool(np.all((hits == 0) | (hits == allow)))

    def meets(self, pk: PlacedKernel, label: int) -> bool:
        """Whether the footprint of `pk` overlaps the kernel `label`."""
        fp = self.footprint(pk)
        if fp is None:
            return False
        mask, region = fp
        return bool(np.any(self.labels[region][mask] == label))

    def add(self, pk: PlacedKernel, label: int) -> None:
        fp = self.footprint(pk)
        if fp is not None:
            mask, region = fp
            self.labels[region][mask] = label


def _slide_against(
    rng: np.random.Generator,
    kernel: Kernel,
    angle: float,
    placed: list[PlacedKernel],
    grid: _OccupancyGrid,
) -> tuple[PlacedKernel, int] | None:
    """Slide a kernel towards a placed, untouched one until their outlines meet.

    Returns the placed kernel and the label of the one it touches.
    """
    if not placed:
        return None
    label = int(rng.integers(0, len(placed))) + 1
    anchor = placed[label - 1]
    if anchor.touching:
        return None
    direction = rng.uniform(0, 2 * np.pi)
    unit = np.array([np.cos(direction), np.sin(direction)])
    for step in np.arange(0.0, 14.0, 0.25):
        centre = np.asarray(anchor.centre_mm) + unit * (15.0 - step)
        pk = PlacedKernel(kernel, (float(centre[0]), float(centre[1])), angle, True)
        if grid.meets(pk, label):
            # The footprints overlap by at most one raster step (0.5 mm): the
            # outlines meet, as kernels pushed together on glass do.
            if grid.free_around(pk, gap_mm=1.0, allow=label):
                return pk, label
            return None
    return None


def render_sample(
    kernels: list[PlacedKernel],
    geometry: RigGeometry,
    appearance: Appearance,
    rng: np.random.Generator,
) -> tuple[dict[View, NDArray[np.uint8]], SampleTruth]:
    """Render both views of the kernels on the plate, with ground truth."""
    images: dict[View, NDArray[np.uint8]] = {}
    labels: dict[View, NDArray[np.uint16]] = {}
    for face, view in enumerate(VIEWS):
        images[view], labels[view] = _render_view(
            kernels, geometry, appearance, view, face, rng
        )

    seen = {view: set(np.unique(labels[view]).tolist()) for view in VIEWS}
    truth = []
    for i, pk in enumerate(kernels):
        k = pk.kernel
        outline = pk.outline_on_plate()
        area = float(cv2.contourArea(outline.astype(np.float32)))
        truth.append(
            KernelTruth(
                index=i,
                condition=k.condition,
                shows_top=bool(k.shows[0] and k.condition != "pure"),
                shows_bottom=bool(k.shows[1] and k.condition != "pure"),
                touching=pk.touching,
                centre_mm=pk.centre_mm,
                area_mm2=area,
                in_top=i + 1 in seen["top"],
                in_bottom=i + 1 in seen["bottom"],
            )
        )
    return images, SampleTruth(labels=labels, kernels=truth, geometry=geometry)


def _render_view(
    kernels: list[PlacedKernel],
    geometry: RigGeometry,
    appearance: Appearance,
    view: View,
    face: int,
    rng: np.random.Generator,
) -> tuple[NDArray[np.uint8], NDArray[np.uint16]]:
    w, h = geometry.image_size
    img, cover = _plate(geometry, appearance, view)
    labels = np.zeros((h, w), np.uint16)
    plate_to_img = geometry.plate_to(view)
    px_per_mm = float(np.sqrt(abs(np.linalg.det(plate_to_img[:2, :2]))))

    layers = []
    for i, pk in enumerate(kernels):
        rgb, alpha, origin = render_face(
            pk.kernel, face, px_per_mm=px_per_mm, light=float(rng.uniform(0.95, 1.05))
        )
        step = 1 / px_per_mm
        patch_to_kernel = np.array(
            [[step, 0, origin[0]], [0, step, origin[1]], [0, 0, 1]]
        )
        m = plate_to_img @ pk.to_plate() @ patch_to_kernel
        ph, pw = alpha.shape
        corners = _apply(m, np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], float))
        x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 2
        x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 2
        x0c, y0c, x1c, y1c = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1c <= x0c or y1c <= y0c:
            continue
        shift = np.array([[1, 0, -x0c], [0, 1, -y0c], [0, 0, 1]], float)
        size = (int(x1c - x0c), int(y1c - y0c))
        rgba = np.dstack([rgb, alpha])
        warped = cv2.warpPerspective(
            rgba, shift @ m, size, flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0)
        )
        layers.append((i, (slice(y0c, y1c), slice(x0c, x1c)), warped))

    shadow = np.zeros((h, w), np.float32)
    for _, region, warped in layers:
        shadow[region] = np.maximum(shadow[region], warped[..., 3])
    dx, dy = appearance.shadow_offset_px
    shadow_shift = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    shadow = _float32(cv2.warpAffine(shadow, shadow_shift, (w, h)))
    shadow = _float32(cv2.GaussianBlur(shadow, (0, 0), 6.0))
    img *= (1 - appearance.shadow * shadow)[..., None]

    for i, region, warped in layers:
        a = warped[..., 3:4]
        img[region] = (
            img[region] * (1 - a) + warped[..., :3] * a * cover[region][..., None]
        )
        labels[region][warped[..., 3] > 0.5] = i + 1

    return _sensor(img, appearance, rng), labels


def render_target(
    geometry: RigGeometry,
    appearance: Appearance,
    rng: np.random.Generator,
    target: DotTarget | None = None,
) -> tuple[dict[View, NDArray[np.uint8]], NDArray[np.float64]]:
    """Render the dot target, lying near the plate centre, in both views.

    Returns
    -------
    images : dict of view to (H, W, 3) uint8 ndarray
    target_to_plate : (3, 3) ndarray
        Where the target lies: its frame (mm) to the plate frame (mm).
    """
    target = target or DotTarget()
    points, markers = target.points_mm(), target.is_marker()
    centre_px = np.array(geometry.image_size, np.float64)[None] / 2
    plate_centre = _apply(np.linalg.inv(geometry.plate_to_top), centre_px)[0]
    angle = rng.uniform(-0.05, 0.05)
    c, s = np.cos(angle), np.sin(angle)
    middle = points.mean(axis=0)
    offset = plate_centre - np.array([[c, -s], [s, c]]) @ middle
    target_to_plate = np.array([[c, -s, offset[0]], [s, c, offset[1]], [0, 0, 1]])

    images: dict[View, NDArray[np.uint8]] = {}
    for view in VIEWS:
        img, _ = _plate(geometry, appearance, view)
        hmat = geometry.plate_to(view) @ target_to_plate
        w, h = geometry.image_size
        ink = np.zeros((h, w), np.uint8)
        ss = 16  # fixed-point sub-pixel positions for anti-aliased circles
        for p, marker in zip(points, markers, strict=True):
            centre = _apply(hmat, p[None])[0]
            radius = (3.0 if marker else 2.0) * np.sqrt(
                abs(np.linalg.det(hmat[:2, :2]))
            )
            cv2.circle(
                ink,
                tuple(int(v) for v in np.round(centre * ss)),
                int(radius * ss),
                255,
                -1,
                cv2.LINE_AA,
                shift=4,
            )
        dark = ink.astype(np.float32)[..., None] / 255
        img = np.asarray(img * (1 - 0.85 * dark), np.float32)
        images[view] = _sensor(img, appearance, rng)
    return images, target_to_plate


def render_blank(
    geometry: RigGeometry, appearance: Appearance, rng: np.random.Generator
) -> dict[View, NDArray[np.uint8]]:
    """Render the empty plate in both views, for flat-field correction."""
    return {
        view: _sensor(_plate(geometry, appearance, view)[0], appearance, rng)
        for view in VIEWS
    }


def _plate(
    geometry: RigGeometry, appearance: Appearance, view: View
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Light the plate (level, radial falloff, colour cast); return it and falloff."""
    w, h = geometry.image_size
    fx, fy = appearance.falloff_centre[0 if view == "top" else 1]
    # The falloff is smooth: computed on a coarse grid, then interpolated.
    step = 8
    yy, xx = np.mgrid[0 : h + step : step, 0 : w + step : step].astype(np.float32)
    r2 = ((xx - fx * w) ** 2 + (yy - fy * h) ** 2) / (0.25 * (w**2 + h**2))
    coarse = np.asarray(1 - appearance.falloff * r2, np.float32)
    cover = _float32(
        cv2.resize(coarse, (coarse.shape[1] * step, coarse.shape[0] * step))[:h, :w]
    )
    tint = np.asarray(appearance.tint, np.float32) * appearance.plate_level
    img = _float32(cv2.merge([cover * float(t) for t in tint]))
    return img, cover


def _sensor(
    img: NDArray[np.float32], appearance: Appearance, rng: np.random.Generator
) -> NDArray[np.uint8]:
    """Optics and sensor: blur, signal-dependent noise, 8-bit quantisation."""
    if appearance.blur_px > 0:
        img = _float32(cv2.GaussianBlur(img, (0, 0), appearance.blur_px))
    # OpenCV's generator, seeded from `rng`, is several times faster than NumPy's
    # for a full frame of Gaussian noise.
    cv2.setRNGSeed(int(rng.integers(0, 2**31 - 1)))
    noise = np.empty(img.shape, np.float32)
    cv2.randn(noise, np.zeros(1), np.ones(1))
    shot = cv2.sqrt(np.clip(img, 0.01, 1.0)) * np.float32(appearance.noise)
    img = _float32(cv2.scaleAdd(cv2.multiply(noise, shot), 1.0, img))
    # Saturating, rounding conversion to 8 bits.
    return np.asarray(cv2.multiply(img, (255.0, 255.0, 255.0, 0.0), dtype=cv2.CV_8U))


def _apply(h: NDArray[np.floating], pts: NDArray[np.float64]) -> NDArray[np.float64]:
    """Apply a (3, 3) homography to (N, 2) points."""
    p = np.hstack([pts, np.ones((len(pts), 1))]) @ h.T
    return p[:, :2] / p[:, 2:3]


def _three(values: NDArray[np.float64]) -> tuple[float, float, float]:
    """Three numbers as a tuple of floats."""
    a, b, c = (float(v) for v in values)
    return a, b, c


def _float32(image: cv2.typing.MatLike) -> NDArray[np.float32]:
    """Type an OpenCV result computed from float32 input as what it is."""
    return cast(NDArray[np.float32], image)
