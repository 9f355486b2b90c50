"""Furniture built from box and cylinder parts, with dimensions drawn from a seeded generator.

``build_shape`` draws one object of a raw ScanNet category in its local frame (``ops.synthetic.parts``). The order of
the draws is part of every generated scene: changing it changes the scenes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ops.synthetic.parts import Furniture, Part, Surface


@dataclass
class _Builder:
    """Collects parts; ``box``/``cyl`` take the bottom centre (x, y, z0) and the size."""

    color: str
    parts: list[Part] = field(default_factory=list)
    surfaces: list[Surface] = field(default_factory=list)

    def box(self, x: float, y: float, z0: float, sx: float, sy: float, sz: float, color: str | None = None) -> None:
        self.parts.append(Part("box", (x, y, z0 + sz / 2), (sx, sy, sz), color or self.color))

    def cyl(self, x: float, y: float, z0: float, radius: float, height: float, color: str | None = None) -> None:
        size = (2 * radius, 2 * radius, height)
        self.parts.append(Part("cylinder", (x, y, z0 + height / 2), size, color or self.color))

    def surface(self, x: float, y: float, sx: float, sy: float, z: float) -> None:
        self.surfaces.append(Surface((x, y), (sx, sy), z))

    def build(self, label: str, front_clearance: float = 0.0, wall_hung: bool = False) -> Furniture:
        return Furniture(label, self.color, tuple(self.parts), tuple(self.surfaces), front_clearance, wall_hung)


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return round(float(rng.uniform(low, high)), 3)


def _legs(b: _Builder, w: float, d: float, h: float, t: float, inset: float, color: str | None = None) -> None:
    for sx in (-1, 1):
        for sy in (-1, 1):
            b.box(sx * (w / 2 - inset - t / 2), sy * (d / 2 - inset - t / 2), 0.0, t, t, h, color)


def _top_on_legs(b: _Builder, w: float, d: float, h: float, top: float, leg: float, inset: float) -> None:
    """A w x d top ``top`` thick whose upper face is at height ``h``, on four legs, and the surface on it."""
    b.box(0, 0, h - top, w, d, top)
    _legs(b, w, d, h - top, leg, inset)
    b.surface(0, 0, w, d, h)


def _chair(rng, color):
    b = _Builder(color)
    w, d, seat = _u(rng, 0.42, 0.5), _u(rng, 0.42, 0.5), _u(rng, 0.43, 0.48)
    _legs(b, w, d, seat - 0.04, 0.04, 0.0)
    b.box(0, 0, seat - 0.04, w, d, 0.05)
    b.box(0, d / 2 - 0.025, seat + 0.01, w, 0.05, _u(rng, 0.38, 0.5))
    return b.build("chair")


def _office_chair(rng, color):
    b = _Builder(color)
    w = _u(rng, 0.48, 0.56)
    b.box(0, 0, 0.0, 0.6, 0.06, 0.06, "black")
    b.box(0, 0, 0.0, 0.06, 0.6, 0.06, "black")
    b.cyl(0, 0, 0.06, 0.03, 0.36, "black")
    b.box(0, 0, 0.42, w, w, 0.08)
    b.box(0, w / 2 - 0.03, 0.5, w - 0.04, 0.06, _u(rng, 0.45, 0.6))
    for sx in (-1, 1):
        b.box(sx * (w / 2 - 0.03), 0.0, 0.5, 0.05, w * 0.6, 0.2, "black")
    return b.build("office chair")


def _armchair(rng, color):
    b = _Builder(color)
    w, d = _u(rng, 0.75, 0.9), _u(rng, 0.75, 0.9)
    b.box(0, 0, 0.0, w, d, 0.42)
    b.box(0, d / 2 - 0.09, 0.42, w, 0.18, _u(rng, 0.35, 0.45))
    for sx in (-1, 1):
        b.box(sx * (w / 2 - 0.07), -0.09, 0.42, 0.14, d - 0.18, 0.2)
    return b.build("armchair")


def _couch(rng, color):
    b = _Builder(color)
    w, d = _u(rng, 1.6, 2.4), _u(rng, 0.82, 0.95)
    arm = 0.18
    b.box(0, 0, 0.0, w, d, 0.42)
    b.box(0, d / 2 - 0.1, 0.42, w, 0.2, _u(rng, 0.38, 0.48))
    for sx in (-1, 1):
        b.box(sx * (w / 2 - arm / 2), -0.1, 0.42, arm, d - 0.2, 0.22)
    b.surface(0, -0.1, w - 2 * arm, d - 0.2, 0.42)
    return b.build("couch")


def _table(rng, color):
    b = _Builder(color)
    w, d, h = _u(rng, 1.0, 1.8), _u(rng, 0.7, 1.0), _u(rng, 0.72, 0.78)
    _top_on_legs(b, w, d, h, 0.04, 0.06, 0.05)
    return b.build("table")


def _coffee_table(rng, color):
    b = _Builder(color)
    w, d, h = _u(rng, 0.9, 1.3), _u(rng, 0.5, 0.7), _u(rng, 0.42, 0.48)
    _top_on_legs(b, w, d, h, 0.05, 0.05, 0.03)
    b.box(0, 0, 0.12, w - 0.1, d - 0.1, 0.02)
    return b.build("coffee table")


def _end_table(rng, color):
    b = _Builder(color)
    w, h = _u(rng, 0.45, 0.55), _u(rng, 0.5, 0.6)
    _top_on_legs(b, w, w, h, 0.04, 0.04, 0.02)
    return b.build("end table")


def _desk(rng, color):
    b = _Builder(color)
    w, d, h = _u(rng, 1.2, 1.7), _u(rng, 0.6, 0.75), 0.75
    b.box(0, 0, h - 0.04, w, d, 0.04)
    b.box(-w / 2 + 0.025, 0, 0.0, 0.05, d, h - 0.04)
    unit = 0.42
    b.box(w / 2 - unit / 2, 0.0, 0.0, unit, d, h - 0.04)
    for k in range(3):
        z0 = 0.05 + k * 0.22
        b.box(w / 2 - unit / 2, -d / 2 - 0.01, z0, unit - 0.04, 0.02, 0.18)
        b.box(w / 2 - unit / 2, -d / 2 - 0.03, z0 + 0.12, 0.12, 0.02, 0.02, "gray")
    b.box(-unit / 2 + 0.02, d / 2 - 0.02, 0.3, w - unit - 0.05, 0.02, h - 0.34)
    b.surface(0, 0, w, d, h)
    return b.build("desk")


def _bed(rng, color):
    b = _Builder(color)
    w, d = _u(rng, 1.4, 1.9), _u(rng, 2.0, 2.2)
    b.box(0, 0, 0.0, w, d, 0.3)
    b.box(0, -0.04, 0.3, w - 0.06, d - 0.14, 0.22, "white")
    b.box(0, d / 2 - 0.04, 0.0, w, 0.08, _u(rng, 0.95, 1.2))
    b.surface(0, -0.04, w - 0.06, d - 0.14, 0.52)
    return b.build("bed")


def _drawers(b: _Builder, w: float, d: float, h: float, rows: int, cols: int) -> None:
    """Drawer fronts and handles on the -Y face of a w x d x h body."""
    gap = 0.03
    dw = (w - gap * (cols + 1)) / cols
    dh = (h - 0.06 - gap * (rows + 1)) / rows
    for r in range(rows):
        for c in range(cols):
            x = -w / 2 + gap + dw / 2 + c * (dw + gap)
            z0 = 0.06 + gap + r * (dh + gap)
            b.box(x, -d / 2 - 0.01, z0, dw, 0.02, dh)
            b.box(x, -d / 2 - 0.03, z0 + dh / 2 - 0.015, min(0.16, dw / 2), 0.02, 0.03, "gray")


def _chest_of_drawers(b: _Builder, w: float, d: float, h: float, rows: int, cols: int) -> None:
    """A w x d x h body with rows x cols drawers on its front, and the surface on top."""
    b.box(0, 0, 0.0, w, d, h)
    _drawers(b, w, d, h, rows, cols)
    b.surface(0, 0, w, d, h)


def _nightstand(rng, color):
    b = _Builder(color)
    w, d, h = _u(rng, 0.4, 0.5), _u(rng, 0.35, 0.42), _u(rng, 0.5, 0.6)
    _chest_of_drawers(b, w, d, h, 2, 1)
    return b.build("nightstand")


def _dresser(rng, color):
    b = _Builder(color)
    w, d, h = _u(rng, 0.9, 1.4), _u(rng, 0.45, 0.55), _u(rng, 0.8, 1.0)
    _chest_of_drawers(b, w, d, h, 3, 2)
    return b.build("dresser", front_clearance=0.4)


def _doors(b: _Builder, w: float, d: float, z0: float, h: float, count: int) -> None:
    """Door panels with vertical handles on the -Y face."""
    gap = 0.02
    pw = (w - gap * (count + 1)) / count
    for k in range(count):
        x = -w / 2 + gap + pw / 2 + k * (pw + gap)
        b.box(x, -d / 2 - 0.01, z0 + gap, pw, 0.02, h - 2 * gap)
        hx = x + (pw / 2 - 0.06) * (1 if k % 2 == 0 else -1)
        b.box(hx, -d / 2 - 0.03, z0 + h / 2 - 0.1, 0.02, 0.02, 0.2, "gray")


def _cabinet(rng, color):
    b = _Builder(color)
    tall = bool(rng.random() < 0.5)
    w, d = _u(rng, 0.6, 1.1), _u(rng, 0.4, 0.5)
    h = _u(rng, 1.5, 1.9) if tall else _u(rng, 0.75, 0.95)
    b.box(0, 0, 0.0, w, d, h)
    _doors(b, w, d, 0.05, h - 0.05, 2)
    b.surface(0, 0, w, d, h)
    return b.build("cabinet", front_clearance=0.4)


def _kitchen_cabinets(rng, color):
    b = _Builder(color)
    w, d, h = _u(rng, 1.2, 2.4), 0.6, 0.86
    b.box(0, 0, 0.0, w, d - 0.02, h)
    b.box(0, -0.01, h, w + 0.02, d, 0.04, str(rng.choice(["gray", "black", "white"])))
    _doors(b, w, d - 0.02, 0.08, h - 0.08, max(2, int(w // 0.5)))
    b.surface(0, -0.01, w, d, h + 0.04)
    return b.build("kitchen cabinets", front_clearance=0.5)


def _bookshelf(rng, color):
    b = _Builder(color)
    w, d, h = _u(rng, 0.7, 1.2), _u(rng, 0.3, 0.38), _u(rng, 1.6, 2.0)
    t = 0.03
    b.box(-w / 2 + t / 2, 0, 0.0, t, d, h)
    b.box(w / 2 - t / 2, 0, 0.0, t, d, h)
    b.box(0, d / 2 - 0.01, 0.0, w - 2 * t, 0.02, h)
    shelves = int(rng.integers(3, 6))
    book_colors = ["red", "blue", "green", "yellow", "white", "black", "orange", "purple"]
    for k in range(shelves + 1):
        z0 = k * (h - t) / shelves
        b.box(0, 0, z0, w - 2 * t, d, t)
        if k == shelves:
            break
        x = -w / 2 + t + 0.02
        gap_z = (h - t) / shelves - t
        while True:
            bw = _u(rng, 0.03, 0.07)
            if x + bw > w / 2 - t - 0.02 or rng.random() < 0.08:
                break
            bh = min(gap_z - 0.03, _u(rng, 0.18, 0.3))
            b.box(x + bw / 2, 0.0, z0 + t, bw, d - 0.08, bh, str(rng.choice(book_colors)))
            x += bw + 0.005
    return b.build("bookshelf", front_clearance=0.4)


def _refrigerator(rng, color):
    b = _Builder(color)
    w, d, h = _u(rng, 0.7, 0.85), _u(rng, 0.65, 0.75), _u(rng, 1.7, 1.9)
    b.box(0, 0, 0.0, w, d, h)
    split = h * 0.35
    b.box(0, -d / 2 - 0.015, 0.02, w - 0.02, 0.03, split - 0.03)
    b.box(0, -d / 2 - 0.015, split + 0.01, w - 0.02, 0.03, h - split - 0.03)
    b.box(w / 2 - 0.08, -d / 2 - 0.045, split - 0.35, 0.03, 0.03, 0.3, "gray")
    b.box(w / 2 - 0.08, -d / 2 - 0.045, split + 0.08, 0.03, 0.03, 0.3, "gray")
    return b.build("refrigerator", front_clearance=0.6)


def _toilet(rng, color):
    b = _Builder(color)
    b.box(0, 0.22, 0.38, 0.44, 0.18, _u(rng, 0.36, 0.42))
    b.cyl(0, -0.05, 0.0, 0.13, 0.26)
    b.cyl(0, -0.05, 0.26, 0.2, 0.14)
    b.cyl(0, -0.05, 0.4, 0.21, 0.03)
    return b.build("toilet", front_clearance=0.4)


def _sink(rng, color, on_counter: bool = False):
    b = _Builder(color)
    w, d = _u(rng, 0.5, 0.62), _u(rng, 0.4, 0.48)
    z0 = 0.0 if on_counter else 0.72
    if not on_counter:
        b.cyl(0, 0.02, 0.0, 0.09, 0.72)
    b.box(0, 0, z0, w, d, 0.14 if not on_counter else 0.06)
    b.cyl(0, d / 2 - 0.05, z0 + 0.06, 0.018, 0.2, "gray")
    return b.build("sink", front_clearance=0.3)


def _bathtub(rng, color):
    b = _Builder(color)
    w, d, h, t = _u(rng, 1.5, 1.75), _u(rng, 0.7, 0.8), _u(rng, 0.5, 0.58), 0.08
    b.box(0, 0, 0.0, w, d, 0.1)
    b.box(-w / 2 + t / 2, 0, 0.1, t, d, h - 0.1)
    b.box(w / 2 - t / 2, 0, 0.1, t, d, h - 0.1)
    b.box(0, -d / 2 + t / 2, 0.1, w - 2 * t, t, h - 0.1)
    b.box(0, d / 2 - t / 2, 0.1, w - 2 * t, t, h - 0.1)
    return b.build("bathtub")


def _monitor(rng, color):
    b = _Builder(color)
    w, h = _u(rng, 0.5, 0.65), _u(rng, 0.3, 0.4)
    b.box(0, 0.0, 0.0, 0.24, 0.18, 0.02)
    b.box(0, 0.03, 0.02, 0.05, 0.04, 0.14)
    b.box(0, 0.0, 0.12, w, 0.04, h)
    return b.build("monitor")


def _tv(rng, color):
    b = _Builder(color)
    w = _u(rng, 0.9, 1.3)
    b.box(0, 0.0, 0.0, 0.4, 0.22, 0.03)
    b.box(0, 0.03, 0.03, 0.08, 0.05, 0.1)
    b.box(0, 0.0, 0.1, w, 0.06, round(w * 0.58, 3))
    return b.build("tv")


def _lamp(rng, color, floor: bool = False):
    b = _Builder(color)
    base = "black" if color != "black" else "gray"
    if floor:
        b.cyl(0, 0, 0.0, 0.16, 0.03, base)
        b.cyl(0, 0, 0.03, 0.016, 1.3, base)
        b.cyl(0, 0, 1.3, 0.2, 0.3)
    else:
        b.cyl(0, 0, 0.0, 0.08, 0.03, base)
        b.cyl(0, 0, 0.03, 0.012, 0.26, base)
        b.cyl(0, 0, 0.26, 0.13, 0.18)
    return b.build("lamp")


def _trash_can(rng, color):
    b = _Builder(color)
    r, h = _u(rng, 0.14, 0.2), _u(rng, 0.35, 0.6)
    b.cyl(0, 0, 0.0, r, h - 0.03)
    b.cyl(0, 0, h - 0.03, r + 0.01, 0.03)
    return b.build("trash can")


def _pillow(rng, color):
    b = _Builder(color)
    b.box(0, 0, 0.0, _u(rng, 0.45, 0.6), _u(rng, 0.32, 0.4), _u(rng, 0.1, 0.15))
    return b.build("pillow")


def _picture(rng, color):
    b = _Builder(color)
    w, h = _u(rng, 0.5, 1.0), _u(rng, 0.4, 0.75)
    frame = "black" if color != "black" else "brown"
    b.box(0, 0.0, 0.0, w, 0.03, h, frame)
    b.box(0, -0.02, 0.04, w - 0.08, 0.01, h - 0.08)
    return b.build("picture", wall_hung=True)


def _mirror(rng, color):
    b = _Builder(color)
    b.box(0, 0, 0.0, _u(rng, 0.5, 0.8), 0.02, _u(rng, 0.6, 0.9))
    return b.build("mirror", wall_hung=True)


def _door(rng, color):
    b = _Builder(color)
    w = _u(rng, 0.8, 0.95)
    b.box(0, 0, 0.0, w, 0.05, 2.05)
    b.box(w / 2 - 0.1, -0.045, 0.95, 0.12, 0.04, 0.03, "gray")
    return b.build("door", front_clearance=0.8)


_SHAPES: dict[str, Callable[[np.random.Generator, str], Furniture]] = {
    "chair": _chair,
    "office chair": _office_chair,
    "armchair": _armchair,
    "couch": _couch,
    "table": _table,
    "coffee table": _coffee_table,
    "end table": _end_table,
    "desk": _desk,
    "bed": _bed,
    "nightstand": _nightstand,
    "dresser": _dresser,
    "cabinet": _cabinet,
    "kitchen cabinets": _kitchen_cabinets,
    "bookshelf": _bookshelf,
    "refrigerator": _refrigerator,
    "toilet": _toilet,
    "sink": _sink,
    "bathtub": _bathtub,
    "monitor": _monitor,
    "tv": _tv,
    "lamp": _lamp,
    "trash can": _trash_can,
    "pillow": _pillow,
    "picture": _picture,
    "mirror": _mirror,
    "door": _door,
}


def build_shape(label: str, rng: np.random.Generator, color: str, variant: str = "") -> Furniture:
    """One ``label`` object of ``color`` with dimensions drawn from ``rng``; ``variant`` "floor" makes a floor lamp,
    "counter" a sink on a counter."""
    if variant == "floor":
        return _lamp(rng, color, floor=True)
    if variant == "counter":
        return _sink(rng, color, on_counter=True)
    return _SHAPES[label](rng, color)
