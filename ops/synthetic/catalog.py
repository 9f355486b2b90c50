"""What synthetic rooms are made of: colours, ScanNet categories, and furniture built from box/cylinder parts.

Every piece of furniture is described in its own local frame: metres, +Z up, z = 0 on the surface it stands on,
x across its width, and its front facing local -Y (a chair's seat faces -Y, its back is at +Y; a bed's headboard
is at +Y). ``ops.synthetic.room`` places these frames in the room.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# Named colours used for both the mesh and the annotations ("the red chair").
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (178, 42, 40),
    "brown": (122, 82, 48),
    "black": (38, 38, 42),
    "white": (232, 232, 226),
    "blue": (48, 82, 168),
    "green": (52, 128, 62),
    "gray": (128, 128, 132),
    "yellow": (222, 188, 52),
    "beige": (214, 194, 158),
    "orange": (222, 122, 42),
    "purple": (112, 62, 142),
    "pink": (222, 142, 172),
}

# The room shell uses lighter shades of the same colour names (painted walls, wooden or tiled floors).
WALL_PALETTE: dict[str, tuple[int, int, int]] = {
    "white": (228, 226, 220),
    "beige": (222, 208, 180),
    "gray": (188, 188, 190),
}
FLOOR_PALETTE: dict[str, tuple[int, int, int]] = {
    "brown": (150, 108, 70),
    "gray": (150, 150, 152),
    "beige": (196, 176, 140),
}

# Rows of ScanNet's scannetv2-labels.combined.tsv for every raw category the generator uses, verbatim
# (17 tab-separated columns, see ops.scannet.writers.LABEL_TSV_COLUMNS).
LABEL_TSV_ROWS: dict[str, str] = {
    "wall": "1\twall\twall\t8277\t1\t12\twall\twall\tWall\t\t\t\t\tn04546855\twall.n.01\twall\t1",
    "floor": "3\tfloor\tfloor\t1553\t2\t5\tfloor\tfloor\tFloor\t\t\t\t\tn03365592\tfloor.n.01\tfloor\t2",
    "chair": "2\tchair\tchair\t4646\t5\t4\tchair\tchair\tChair\tchair\tchair\tchair\t3001627\tn03001627\tchair.n.01"
    "\tchair\t3",
    "office chair": "10\toffice chair\toffice chair\t595\t5\t4\tchair\tchair\tChair\tchair\tchair\tchair\t3001627"
    "\tn04373704\tswivel_chair.n.01\tchair\t3",
    "armchair": "23\tarmchair\tarmchair\t281\t5\t4\tchair\tchair\tChair\tchair\tchair\tchair\t3001627\tn02738535"
    "\tarmchair.n.01\tchair\t3",
    "table": "4\ttable\ttable\t1170\t7\t10\ttable\ttable\tTable\ttable\ttable\ttable\t4379243\tn04379243\ttable.n.02"
    "\ttable\t5",
    "coffee table": "24\tcoffee table\tcoffee table\t258\t7\t10\tcoffee table\ttable\tTable\ttable\ttable\ttable"
    "\t4379243\tn03063968\tcoffee_table.n.01\ttable\t5",
    "end table": "44\tend table\tend table\t147\t7\t10\ttable\ttable\tTable\ttable\ttable\ttable\t4379243\tn04379243"
    "\ttable.n.02\ttable\t5",
    "desk": "9\tdesk\tdesk\t680\t14\t10\tdesk\tdesk\tTable\tdesk\tdesk\ttable\t4379243\tn03179701\tdesk.n.01\ttable\t5",
    "couch": "6\tcouch\tcouch\t502\t6\t9\tsofa\tsofa\tSofa\tsofa\tsofa\tsofa\t4256520\tn04256520\tsofa.n.01\tsofa\t10",
    "bed": "11\tbed\tbed\t370\t4\t1\tbed\tbed\tBed\tbed\tbed\tbed\t2818832\tn02818832\tbed.n.01\tbed\t11",
    "nightstand": "34\tnightstand\tnightstand\t224\t32\t6\tnight stand\tnight stand\tFurniture\tnight_stand"
    "\tnight_stand\t\t\tn03015254\tchest_of_drawers.n.01\tchest_of_drawers\t13",
    "dresser": "36\tdresser\tdresser\t213\t17\t6\tdresser\tdresser\tFurniture\tdresser\tdresser\t\t\tn03015254"
    "\tchest_of_drawers.n.01\tchest_of_drawers\t13",
    "cabinet": "7\tcabinet\tcabinet\t731\t3\t6\tcabinet\tcabinet\tFurniture\t\t\tcabinet\t2933112\tn02933112"
    "\tcabinet.n.01\tcabinet\t7",
    "kitchen cabinets": "29\tkitchen cabinets\tkitchen cabinet\t289\t3\t6\tcabinet\tcabinet\tFurniture\t\t"
    "\tcabinet\t2933112\tn02933112\tcabinet.n.01\tcabinet\t7",
    "bookshelf": "18\tbookshelf\tbookshelf\t360\t10\t6\tbookshelf\tbookshelf\tFurniture\tbookshelf\t\tbookshelf"
    "\t2871439\tn02871439\tbookshelf.n.01\tshelving\t31",
    "refrigerator": "27\trefrigerator\trefrigerator\t154\t24\t6\trefrigerator\trefrigerator\tFurniture\t\t\t\t"
    "\tn04070727\trefrigerator.n.01\tappliances\t37",
    "toilet": "17\ttoilet\ttoilet\t256\t33\t7\ttoilet\ttoilet\tObjects\ttoilet\ttoilet\t\t\tn04446276\ttoilet.n.01"
    "\ttoilet\t18",
    "sink": "14\tsink\tsink\t488\t34\t7\tsink\tsink\tObjects\tsink\t\t\t\tn04223580\tsink.n.01\tsink\t15",
    "bathtub": "42\tbathtub\tbathtub\t144\t36\t7\tbathtub\tbathtub\tObjects\tbathtub\tbathtub\ttub\t2808440"
    "\tn02808440\tbathtub.n.01\tbathtub\t25",
    "monitor": "19\tmonitor\tmonitor\t765\t40\t7\tmonitor\totherprop\tObjects\tmonitor\tmonitor\ttv or monitor"
    "\t3211117\tn03782190\tmonitor.n.04\tobjects\t39",
    "tv": "33\ttv\ttv\t219\t25\t11\ttelevision\ttelevision\tTV\t\t\ttv or monitor\t3211117\tn03211117\tdisplay.n.06"
    "\ttv_monitor\t22",
    "lamp": "28\tlamp\tlamp\t419\t35\t7\tlamp\tlamp\tObjects\tlamp\t\tlamp\t3636649\tn03636649\tlamp.n.02"
    "\tlighting\t28",
    "trash can": "56\ttrash can\ttrash can\t1090\t39\t6\tgarbage bin\totherfurniture\tFurniture\t\t\ttrash_bin"
    "\t2747177\tn02747177\tashcan.n.01\tobjects\t39",
    "pillow": "13\tpillow\tpillow\t937\t18\t7\tpillow\tpillow\tObjects\t\t\tpillow\t3938244\tn03938244\tpillow.n.01"
    "\tcushion\t8",
    "picture": "15\tpicture\tpicture\t862\t11\t8\tpicture\tpicture\tPicture\t\t\t\t\tn03931044\tpicture.n.01"
    "\tpicture\t6",
    "mirror": "71\tmirror\tmirror\t349\t19\t7\tmirror\tmirror\tObjects\t\t\t\t\tn03773035\tmirror.n.01\tmirror\t21",
    "door": "5\tdoor\tdoor\t1483\t8\t12\tdoor\tdoor\tWall\tdoor\t\t\t\tn03221720\tdoor.n.01\tdoor\t4",
}


def nyu40_id(label: str) -> int:
    """The NYU40 class id of a raw ScanNet category used here."""
    return int(LABEL_TSV_ROWS[label].split("\t")[4])


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
    b.box(0, 0, h - 0.04, w, d, 0.04)
    _legs(b, w, d, h - 0.04, 0.06, 0.05)
    b.surface(0, 0, w, d, h)
    return b.build("table")


def _coffee_table(rng, color):
    b = _Builder(color)
    w, d, h = _u(rng, 0.9, 1.3), _u(rng, 0.5, 0.7), _u(rng, 0.42, 0.48)
    b.box(0, 0, h - 0.05, w, d, 0.05)
    _legs(b, w, d, h - 0.05, 0.05, 0.03)
    b.box(0, 0, 0.12, w - 0.1, d - 0.1, 0.02)
    b.surface(0, 0, w, d, h)
    return b.build("coffee table")


def _end_table(rng, color):
    b = _Builder(color)
    w, h = _u(rng, 0.45, 0.55), _u(rng, 0.5, 0.6)
    b.box(0, 0, h - 0.04, w, w, 0.04)
    _legs(b, w, w, h - 0.04, 0.04, 0.02)
    b.surface(0, 0, w, w, h)
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


def _nightstand(rng, color):
    b = _Builder(color)
    w, d, h = _u(rng, 0.4, 0.5), _u(rng, 0.35, 0.42), _u(rng, 0.5, 0.6)
    b.box(0, 0, 0.0, w, d, h)
    _drawers(b, w, d, h, 2, 1)
    b.surface(0, 0, w, d, h)
    return b.build("nightstand")


def _dresser(rng, color):
    b = _Builder(color)
    w, d, h = _u(rng, 0.9, 1.4), _u(rng, 0.45, 0.55), _u(rng, 0.8, 1.0)
    b.box(0, 0, 0.0, w, d, h)
    _drawers(b, w, d, h, 3, 2)
    b.surface(0, 0, w, d, h)
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


@dataclass(frozen=True)
class Category:
    """A raw ScanNet category: how to build one, and the colours an instance may take."""

    label: str
    build: Callable[[np.random.Generator, str], Furniture]
    colors: tuple[str, ...]


CATEGORIES: dict[str, Category] = {
    c.label: c
    for c in (
        Category("chair", _chair, ("red", "brown", "black", "blue", "green", "gray", "white")),
        Category("office chair", _office_chair, ("black", "blue", "gray", "red")),
        Category("armchair", _armchair, ("red", "brown", "beige", "blue", "green", "gray")),
        Category("couch", _couch, ("brown", "gray", "blue", "red", "beige", "black", "green")),
        Category("table", _table, ("brown", "white", "black", "gray")),
        Category("coffee table", _coffee_table, ("brown", "black", "white")),
        Category("end table", _end_table, ("brown", "white", "black")),
        Category("desk", _desk, ("brown", "white", "black", "gray")),
        Category("bed", _bed, ("brown", "white", "black", "gray", "blue")),
        Category("nightstand", _nightstand, ("brown", "white", "black")),
        Category("dresser", _dresser, ("brown", "white", "black")),
        Category("cabinet", _cabinet, ("brown", "white", "gray", "black", "blue")),
        Category("kitchen cabinets", _kitchen_cabinets, ("white", "brown", "gray", "blue")),
        Category("bookshelf", _bookshelf, ("brown", "white", "black")),
        Category("refrigerator", _refrigerator, ("white", "gray", "black")),
        Category("toilet", _toilet, ("white",)),
        Category("sink", _sink, ("white", "gray")),
        Category("bathtub", _bathtub, ("white",)),
        Category("monitor", _monitor, ("black", "gray", "white")),
        Category("tv", _tv, ("black", "gray")),
        Category("lamp", _lamp, ("white", "beige", "black", "yellow", "red")),
        Category("trash can", _trash_can, ("gray", "black", "blue", "green", "white")),
        Category("pillow", _pillow, ("red", "blue", "white", "yellow", "green", "beige", "purple", "orange")),
        Category("picture", _picture, ("red", "blue", "green", "yellow", "orange", "purple")),
        Category("mirror", _mirror, ("gray",)),
        Category("door", _door, ("brown", "white")),
    )
}


def build_furniture(label: str, rng: np.random.Generator, variant: str = "") -> Furniture:
    """Draw a colour and dimensions for one ``label``; ``variant`` picks e.g. a floor lamp or a counter sink."""
    category = CATEGORIES[label]
    color = str(rng.choice(category.colors))
    if variant == "floor":
        return _lamp(rng, color, floor=True)
    if variant == "counter":
        return _sink(rng, color, on_counter=True)
    return category.build(rng, color)
