"""The calibration target: a chrome-on-glass grid of dots, seen by both cameras.

Three dots are larger than the rest and fix the target's origin and axes, at grid
positions (0, 0), (1, 0) and (0, 2). That L is chiral, so a view that mirrors the
target (the bottom camera's) is still read with the right axes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class DotTarget:
    """Layout of a dot-grid target.

    Attributes
    ----------
    columns, rows : int
        Dots along x and along y.
    pitch_mm : float
        Centre-to-centre distance between neighbouring dots.
    dot_radius_mm, marker_radius_mm : float
        Radius of an ordinary dot and of a marker dot.
    """

    columns: int = 19
    rows: int = 15
    pitch_mm: float = 10.0
    dot_radius_mm: float = 2.0
    marker_radius_mm: float = 3.0
    markers: tuple[tuple[int, int], ...] = ((0, 0), (1, 0), (0, 2))

    def grid(self) -> NDArray[np.int64]:
        """(N, 2) grid positions (column, row) of every dot, row by row."""
        gx, gy = np.meshgrid(np.arange(self.columns), np.arange(self.rows))
        return np.stack([gx.ravel(), gy.ravel()], axis=1)

    def points_mm(self) -> NDArray[np.float64]:
        """(N, 2) dot centres in the target's frame, millimetres."""
        return np.asarray(self.grid() * self.pitch_mm, np.float64)

    def is_marker(self) -> NDArray[np.bool_]:
        """(N,) whether each dot of `grid()` is a marker."""
        marks = set(self.markers)
        return np.array([tuple(g) in marks for g in self.grid().tolist()])

    def to_json(self) -> dict[str, object]:
        """Plain-data form, stored with each calibration."""
        return {
            "kind": "dot-grid",
            "columns": self.columns,
            "rows": self.rows,
            "pitch_mm": self.pitch_mm,
            "markers": [list(m) for m in self.markers],
        }
