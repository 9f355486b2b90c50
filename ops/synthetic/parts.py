"""The shape of one piece of furniture: box and cylinder parts, the surfaces it offers, its local extent.

Every piece is described in its own local frame: metres, +Z up, z = 0 on the surface it stands on, x across its
width, and its front facing local -Y (a chair's seat faces -Y, its back is at +Y; a bed's headboard is at +Y).
``ops.synthetic.room`` places these frames in the room.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Part:
    """A box or an upright cylinder in the object's local frame. ``size`` is the full extent (x, y, z);
    a cylinder has diameter ``size[0]`` (= ``size[1]``) and height ``size[2]``."""

    shape: str
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    color: str


@dataclass(frozen=True)
class Surface:
    """A horizontal rectangle (local frame) that other objects can stand on, at height ``z``."""

    center: tuple[float, float]
    size: tuple[float, float]
    z: float


@dataclass(frozen=True)
class Furniture:
    """One object's shape before placement: parts, support surfaces and its local bounding box."""

    label: str
    color: str
    parts: tuple[Part, ...]
    surfaces: tuple[Surface, ...] = ()
    front_clearance: float = 0.0  # metres kept free in front (-Y) of it, e.g. for a door to open
    wall_hung: bool = False

    @property
    def extent(self) -> np.ndarray:
        """Local AABB as [[xmin, ymin, zmin], [xmax, ymax, zmax]]."""
        lows = [np.subtract(p.center, np.divide(p.size, 2)) for p in self.parts]
        highs = [np.add(p.center, np.divide(p.size, 2)) for p in self.parts]
        return np.array([np.min(lows, axis=0), np.max(highs, axis=0)])

    @property
    def width(self) -> float:
        return float(self.extent[1, 0] - self.extent[0, 0])

    @property
    def depth(self) -> float:
        return float(self.extent[1, 1] - self.extent[0, 1])

    @property
    def height(self) -> float:
        return float(self.extent[1, 2])
