"""Maize kernels for the simulated rig: outline, the look of each face, defects.

A kernel lives in its own frame, in millimetres: the long axis runs along +y from
the tip (y < 0) to the crown (y > 0). Each kernel has two faces, the one facing the
top camera (face 0) and the one lying on the glass, seen by the bottom camera
(face 1). Both faces share one silhouette, the kernel's outline projected on the
plate, so a view's mask is that outline mapped by the view's homography.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import cv2
import numpy as np
from numpy.typing import NDArray

Condition = Literal["pure", "broken", "discolored", "silkcut"]
CONDITIONS: tuple[Condition, ...] = ("pure", "broken", "discolored", "silkcut")

#: Floury endosperm exposed by a break, linear RGB in [0, 1].
_ENDOSPERM = np.array([0.95, 0.93, 0.84], dtype=np.float32)


@dataclass(frozen=True)
class Kernel:
    """One simulated maize kernel and its condition.

    Attributes
    ----------
    outline_mm : (P, 2) float ndarray
        Closed outline in the kernel frame, millimetres, after any break.
    length_mm, width_mm : float
        Size of the intact kernel.
    condition : Condition
        Ground-truth class.
    shows : tuple of bool
        Whether face 0 (top view) and face 1 (bottom view) show the defect.
    germ_face : int
        Which face carries the germ.
    colour : (3,) float ndarray
        Base pericarp colour, RGB in [0, 1].
    seed : int
        Seed of the kernel's own random texture.
    """

    outline_mm: NDArray[np.float64]
    length_mm: float
    width_mm: float
    condition: Condition
    shows: tuple[bool, bool]
    germ_face: int
    colour: NDArray[np.float32]
    seed: int
    break_line: tuple[float, float, float] | None = None


def random_kernel(
    rng: np.random.Generator, condition: Condition, *, scale: float = 1.0
) -> Kernel:
    """Draw a kernel of the given condition with random shape, size and colour.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    condition : Condition
        The class the kernel will show.
    scale : float
        Multiplies the nominal size (about 11 x 8.5 mm).
    """
    length = float(rng.normal(11.0, 0.9)) * scale
    width = float(rng.normal(8.5, 0.8)) * scale
    width = min(width, 0.95 * length)
    outline = _intact_outline(rng, length, width)

    shows = (True, True)
    if condition != "pure":
        sides = rng.choice(3, p=[0.5, 0.25, 0.25])
        shows = ((True, True), (True, False), (False, True))[int(sides)]

    break_line = None
    if condition == "broken" and all(shows):
        outline, break_line = _break_outline(rng, outline, length, width)

    hue = rng.uniform(0.0, 1.0)
    yellow = np.array([0.93, 0.78, 0.32])
    orange = np.array([0.90, 0.55, 0.16])
    colour = (1 - hue) * yellow + hue * orange
    colour = colour * rng.uniform(0.88, 1.05) + rng.normal(0, 0.02, 3)
    return Kernel(
        outline_mm=outline,
        length_mm=length,
        width_mm=width,
        condition=condition,
        shows=shows,
        germ_face=int(rng.integers(0, 2)),
        colour=np.clip(colour, 0.05, 1.0).astype(np.float32),
        seed=int(rng.integers(0, 2**31 - 1)),
        break_line=break_line,
    )


def _intact_outline(
    rng: np.random.Generator, length: float, width: float, n: int = 96
) -> NDArray[np.float64]:
    """Tooth-like outline: narrow rounded tip, broad slightly dented crown."""
    phi = np.linspace(0, 2 * np.pi, n, endpoint=False)
    p = rng.uniform(2.2, 3.0)
    c, s = np.cos(phi), np.sin(phi)
    x0 = np.sign(c) * np.abs(c) ** (2 / p)
    y0 = np.sign(s) * np.abs(s) ** (2 / p)

    taper = rng.uniform(0.35, 0.6)
    along = (y0 + 1) / 2
    x = x0 * (width / 2) * (taper + (1 - taper) * along**0.55)
    y = y0 * (length / 2)

    dent = rng.uniform(0.0, 0.5)
    y -= dent * np.exp(-((x / (0.25 * width)) ** 2)) * (y0 > 0.5) * (y0 - 0.5) * 2

    wobble = np.zeros_like(phi)
    for k in range(2, 6):
        wobble += rng.normal(0, 0.012) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    return np.stack([x * (1 + wobble), y * (1 + wobble)], axis=1)


def _break_outline(
    rng: np.random.Generator,
    outline: NDArray[np.float64],
    length: float,
    width: float,
) -> tuple[NDArray[np.float64], tuple[float, float, float]]:
    """Cut a piece off the outline along a ragged line; return it and the line.

    The line is (nx, ny, d): points with nx*x + ny*y > d are gone.
    """
    angle = rng.uniform(0, 2 * np.pi)
    normal = np.array([np.cos(angle), np.sin(angle)])
    extent = np.abs(outline @ normal).max()
    d = rng.uniform(0.05, 0.55) * extent

    proj = outline @ normal
    tangent = np.array([-normal[1], normal[0]])
    keep = proj <= d
    cut = outline.copy()
    ragged = rng.normal(0, 0.25, len(outline))
    ragged = np.convolve(ragged, np.ones(5) / 5, mode="same")
    # Points beyond the line are pulled back onto a ragged version of it.
    beyond = ~keep
    along = outline[beyond] @ tangent
    cut[beyond] = np.outer(along, tangent) + np.outer(d + ragged[beyond] * 0.6, normal)
    return cut, (float(normal[0]), float(normal[1]), float(d))


def render_face(
    kernel: Kernel, face: int, *, px_per_mm: float, light: float = 1.0
) -> tuple[NDArray[np.float32], NDArray[np.float32], tuple[float, float]]:
    """Render one face of a kernel on its own patch.

    Parameters
    ----------
    kernel : Kernel
        The kernel.
    face : {0, 1}
        0 for the face seen from the top camera, 1 for the bottom one.
    px_per_mm : float
        Patch resolution.
    light : float
        Overall brightness factor.

    Returns
    -------
    rgb : (h, w, 3) float32 ndarray
        Colour in [0, 1].
    alpha : (h, w) float32 ndarray
        Coverage in [0, 1], anti-aliased at the outline.
    origin_mm : tuple of float
        Kernel-frame coordinates (x, y) of the patch's pixel (0, 0) centre.
    """
    rng = np.random.default_rng(kernel.seed + 7919 * face)
    pts = kernel.outline_mm
    margin = 1.0
    x_min, y_min = pts.min(axis=0) - margin
    x_max, y_max = pts.max(axis=0) + margin
    w = int(np.ceil((x_max - x_min) * px_per_mm))
    h = int(np.ceil((y_max - y_min) * px_per_mm))

    alpha = _polygon_alpha(pts, (x_min, y_min), px_per_mm, (h, w))
    inside = alpha > 0.5
    dist = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5)
    half_w = max(float(dist.max()), 1.0)

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kx = x_min + (xx + 0.5) / px_per_mm
    ky = y_min + (yy + 0.5) / px_per_mm
    v = ky / (kernel.length_mm / 2)  # -1 at the tip, +1 at the crown

    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = kernel.colour
    rgb *= 1 + _smooth_noise(rng, (h, w), 6 * px_per_mm, 0.05)[..., None]
    streaks = _smooth_noise(rng, (h, max(2, w // 4)), 2 * px_per_mm, 0.035)
    rgb *= 1 + cv2.resize(streaks, (w, h))[..., None]

    crown = np.clip((v - 0.35) / 0.5, 0, 1) ** 1.5
    crown_colour = np.clip(kernel.colour * 0.35 + 0.68, 0, 1)
    _blend(rgb, crown_colour, crown * rng.uniform(0.35, 0.8))
    tip = np.clip((-v - 0.78) / 0.2, 0, 1)
    _blend(rgb, np.array([0.55, 0.42, 0.25], np.float32), tip * 0.7)

    if face == kernel.germ_face:
        _paint_germ(rgb, rng, kx, ky, kernel)

    if kernel.shows[face]:
        _paint_defect(rgb, rng, kernel, kx, ky, inside, px_per_mm)

    height = np.sqrt(np.clip(dist / half_w, 0, 1))
    shade = 0.72 + 0.28 * height
    glint = np.exp(-(((kx + 0.15 * kernel.width_mm) / 1.2) ** 2)) * np.exp(
        -(((ky - 0.1 * kernel.length_mm) / 2.0) ** 2)
    )
    rgb = rgb * shade[..., None] * light + 0.08 * glint[..., None]
    step = 0.5 / px_per_mm
    return np.clip(rgb, 0, 1), alpha, (float(x_min) + step, float(y_min) + step)


def _polygon_alpha(
    pts: NDArray[np.float64],
    origin: tuple[float, float],
    px_per_mm: float,
    shape: tuple[int, int],
) -> NDArray[np.float32]:
    """Anti-aliased coverage of a polygon on a raster (4x supersampled)."""
    ss = 4
    h, w = shape
    canvas = np.zeros((h * ss, w * ss), np.uint8)
    poly = (pts - np.asarray(origin)) * px_per_mm * ss - 0.5
    poly_fixed = np.round(poly * 16).astype(np.int32)
    cv2.fillPoly(canvas, [poly_fixed], 255, lineType=cv2.LINE_8, shift=4)
    small = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], sigma_px: float, amp: float
) -> NDArray[np.float32]:
    """Gaussian-filtered white noise scaled to a standard deviation of `amp`."""
    # Smooth noise is made on a coarser grid and resized: same look, a fraction of
    # the cost of a wide blur at full size.
    factor = max(1, int(sigma_px // 2))
    h, w = shape
    small = (max(2, -(-h // factor)), max(2, -(-w // factor)))
    noise = rng.normal(0, 1, small).astype(np.float32)
    blur_sigma = max(sigma_px / factor, 0.5)
    noise = cast(NDArray[np.float32], cv2.GaussianBlur(noise, (0, 0), blur_sigma))
    if factor > 1:
        noise = cast(
            NDArray[np.float32],
            cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR),
        )
    noise -= float(noise.mean())
    std = float(noise.std()) or 1.0
    return noise * (amp / std)


def _blend(
    rgb: NDArray[np.float32], colour: NDArray[np.floating], weight: NDArray[np.floating]
) -> None:
    """In place: rgb = rgb * (1 - weight) + colour * weight."""
    wgt = np.asarray(weight, np.float32)[..., None]
    rgb *= 1 - wgt
    rgb += wgt * np.asarray(colour, np.float32)


def _paint_germ(
    rgb: NDArray[np.float32],
    rng: np.random.Generator,
    kx: NDArray[np.float32],
    ky: NDArray[np.float32],
    kernel: Kernel,
) -> None:
    """Paint a pale teardrop over the tip half, darker at the rim where it sinks."""
    cy = -0.12 * kernel.length_mm + rng.normal(0, 0.3)
    ry = rng.uniform(0.3, 0.38) * kernel.length_mm
    rx = rng.uniform(0.2, 0.27) * kernel.width_mm
    narrowing = 1 - 0.35 * np.clip((cy - ky) / ry, 0, 1)
    r = np.sqrt((kx / (rx * narrowing)) ** 2 + ((ky - cy) / ry) ** 2)
    inner = np.clip((1.0 - r) / 0.12, 0, 1)
    rim = np.exp(-(((r - 1.0) / 0.07) ** 2))
    germ_colour = np.clip(kernel.colour * 0.45 + np.array([0.5, 0.47, 0.33]), 0, 1)
    _blend(rgb, germ_colour, inner * rng.uniform(0.55, 0.85))
    _blend(rgb, kernel.colour * 0.6, rim * 0.35)


def _paint_defect(
    rgb: NDArray[np.float32],
    rng: np.random.Generator,
    kernel: Kernel,
    kx: NDArray[np.float32],
    ky: NDArray[np.float32],
    inside: NDArray[np.bool_],
    px_per_mm: float,
) -> None:
    """Paint the visible signs of the kernel's condition on one face."""
    h, w = inside.shape
    if kernel.condition == "broken":
        if kernel.break_line is not None:
            nx, ny, d = kernel.break_line
            depth = rng.uniform(0.8, 2.2)
            face_zone = np.clip(1 - (d - (nx * kx + ny * ky)) / depth, 0, 1)
        else:
            # A chip off this face only: the silhouette stays whole.
            cx = rng.uniform(-0.3, 0.3) * kernel.width_mm
            cy = rng.uniform(-0.1, 0.4) * kernel.length_mm
            rad = rng.uniform(0.22, 0.34) * kernel.width_mm
            blob = _smooth_noise(rng, (h, w), 1.2 * px_per_mm, 0.25)
            r = np.sqrt((kx - cx) ** 2 + (ky - cy) ** 2) / rad + blob
            face_zone = np.clip((1 - r) / 0.15, 0, 1)
        grain = 1 + _smooth_noise(rng, (h, w), 0.4 * px_per_mm, 0.06)
        _blend(rgb, _ENDOSPERM * grain[..., None], face_zone**0.7)
    elif kernel.condition == "discolored":
        field = _smooth_noise(rng, (h, w), 1.8 * px_per_mm, 1.0)
        level = rng.uniform(0.3, 1.0)
        patches = np.clip((field - level) / 0.4, 0, 1) * inside
        if rng.random() < 0.35 or patches.sum() < 0.08 * inside.sum():
            spot_y = rng.uniform(-0.3, 0.4) * kernel.length_mm
            spot = np.exp(-((kx**2 + (ky - spot_y) ** 2) / (2.2**2)))
            patches = np.maximum(patches, spot * rng.uniform(0.6, 1.0))
        brown = np.array([0.36, 0.22, 0.10]) * rng.uniform(0.45, 0.9)
        _blend(rgb, brown.astype(np.float32), patches * rng.uniform(0.7, 0.95))
    elif kernel.condition == "silkcut":
        canvas = np.zeros((h, w), np.float32)
        for _ in range(int(rng.integers(2, 5))):
            y0 = rng.uniform(-0.35, 0.4) * kernel.length_mm
            tilt = rng.normal(0, 0.25)
            xs = np.linspace(-kernel.width_mm, kernel.width_mm, 40)
            ys = y0 + tilt * xs + np.cumsum(rng.normal(0, 0.06, xs.size))
            pts = np.stack([xs, ys], axis=1)
            pts = (pts - [kx[0, 0], ky[0, 0]]) * px_per_mm
            thick = max(1, int(round(rng.uniform(0.18, 0.3) * px_per_mm)))
            cv2.polylines(
                canvas,
                [np.round(pts).astype(np.int32)],
                False,
                1.0,
                thick,
                cv2.LINE_AA,
            )
        canvas *= inside
        edge = cv2.GaussianBlur(canvas, (0, 0), 0.35 * px_per_mm) - canvas
        pale = np.clip(canvas, 0, 1) * rng.uniform(0.45, 0.8)
        _blend(rgb, np.array([0.97, 0.94, 0.82], np.float32), pale)
        _blend(rgb, kernel.colour * 0.4, np.clip(edge * 1.5, 0, 0.6))
