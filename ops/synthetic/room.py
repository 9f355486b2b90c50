"""Room layout: furniture placed without overlaps by seeded rejection sampling (``ops.synthetic.mesh`` meshes it).

Everything here is in ScanNet's *axis-aligned* frame: metres, +Z up, floor at z = 0, the room's walls at
x = ±width/2 and y = ±depth/2, no ceiling (ScanNet meshes have none).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ops.synthetic.catalog import FLOOR_PALETTE, WALL_PALETTE, build_furniture
from ops.synthetic.parts import Furniture

CAMERA_MARGIN = 1.2  # the camera loop stays this far from the walls (metres)
TALL = 1.2  # objects taller than this must stay out of the camera's band
CLEARANCE = 0.03  # minimum gap between two objects' footprints
MAX_TRIES = 40


@dataclass(frozen=True)
class Item:
    """One entry of a room recipe: ``count`` instances of ``label`` placed by ``place``:

    "wall" back against a random wall; "corner" against a wall at one of its ends; "hung" on a wall 1.15–1.45 m
    up; "free" anywhere 0.6 m clear of the walls; and relative to an object of one of the ``anchors`` labels:
    "on" its top surface, "beside" it along its back line, "front" in front of it facing it, "ahead" in front of
    it facing the same way, "around" at one of its sides facing it.
    """

    label: str
    count: tuple[int, int]
    place: str
    anchors: tuple[str, ...] = ()
    variant: str = ""


# Room recipes, keyed by ScanNet ``sceneType``: required items first (``count`` = instances to try), then extras
# drawn at random until the target count (an extra's ``count[1]`` caps how many of that label the room may hold).
ROOM_TYPES: dict[str, tuple[tuple[Item, ...], tuple[Item, ...]]] = {
    "Bedroom / Hotel": (
        (
            Item("door", (1, 1), "wall"),
            Item("bed", (1, 1), "wall"),
            Item("nightstand", (1, 2), "beside", ("bed",)),
            Item("lamp", (1, 2), "on", ("nightstand",)),
            Item("pillow", (1, 3), "on", ("bed",)),
            Item("dresser", (0, 1), "wall"),
            Item("tv", (0, 1), "on", ("dresser",)),
            Item("desk", (0, 1), "wall"),
            Item("chair", (0, 1), "front", ("desk",)),
            Item("monitor", (0, 1), "on", ("desk",)),
        ),
        (
            Item("picture", (1, 3), "hung"),
            Item("trash can", (1, 2), "corner"),
            Item("cabinet", (1, 2), "wall"),
            Item("bookshelf", (1, 2), "wall"),
            Item("armchair", (1, 2), "free"),
            Item("lamp", (1, 2), "corner", variant="floor"),
        ),
    ),
    "Living room / Lounge": (
        (
            Item("door", (1, 1), "wall"),
            Item("couch", (1, 2), "wall"),
            Item("pillow", (1, 3), "on", ("couch",)),
            Item("coffee table", (1, 1), "ahead", ("couch",)),
            Item("cabinet", (1, 1), "wall"),
            Item("tv", (1, 1), "on", ("cabinet",)),
            Item("armchair", (0, 2), "front", ("coffee table",)),
            Item("end table", (0, 1), "beside", ("couch",)),
            Item("lamp", (0, 1), "on", ("end table",)),
        ),
        (
            Item("picture", (1, 3), "hung"),
            Item("bookshelf", (1, 2), "wall"),
            Item("lamp", (1, 2), "corner", variant="floor"),
            Item("trash can", (1, 2), "corner"),
            Item("chair", (1, 3), "free"),
            Item("table", (1, 1), "free"),
        ),
    ),
    "Office": (
        (
            Item("door", (1, 1), "wall"),
            Item("desk", (1, 3), "wall"),
            Item("office chair", (1, 3), "front", ("desk",)),
            Item("monitor", (1, 3), "on", ("desk",)),
            Item("bookshelf", (0, 2), "wall"),
            Item("cabinet", (0, 2), "wall"),
            Item("lamp", (0, 1), "on", ("desk",)),
            Item("trash can", (1, 2), "beside", ("desk",)),
        ),
        (
            Item("picture", (1, 3), "hung"),
            Item("table", (1, 1), "free"),
            Item("chair", (1, 4), "around", ("table",)),
            Item("couch", (1, 1), "wall"),
            Item("trash can", (1, 3), "corner"),
            Item("bookshelf", (1, 2), "wall"),
        ),
    ),
    "Kitchen": (
        (
            Item("door", (1, 1), "wall"),
            Item("refrigerator", (1, 1), "wall"),
            Item("kitchen cabinets", (1, 3), "wall"),
            Item("sink", (1, 1), "on", ("kitchen cabinets",), variant="counter"),
            Item("table", (1, 1), "free"),
            Item("chair", (2, 4), "around", ("table",)),
            Item("trash can", (1, 1), "beside", ("kitchen cabinets", "refrigerator")),
        ),
        (
            Item("picture", (1, 3), "hung"),
            Item("cabinet", (1, 3), "wall"),
            Item("chair", (1, 6), "around", ("table",)),
            Item("trash can", (1, 3), "corner"),
            Item("lamp", (1, 2), "on", ("table", "cabinet")),
        ),
    ),
    "Bathroom": (
        (
            Item("door", (1, 1), "wall"),
            Item("toilet", (1, 1), "wall"),
            Item("sink", (1, 2), "wall"),
            Item("mirror", (0, 1), "hung"),
            Item("bathtub", (0, 1), "wall"),
            Item("trash can", (1, 1), "beside", ("toilet", "sink")),
            Item("cabinet", (0, 1), "wall"),
        ),
        (
            Item("picture", (1, 3), "hung"),
            Item("cabinet", (1, 3), "wall"),
            Item("trash can", (1, 3), "corner"),
            Item("chair", (1, 2), "free"),
            Item("lamp", (1, 1), "on", ("cabinet",)),
        ),
    ),
}


@dataclass
class PlacedObject:
    """A piece of furniture in the room: local frame rotated by ``yaw`` about +Z and moved to ``position``."""

    furniture: Furniture
    position: np.ndarray  # (x, y, z) of the local origin, aligned frame
    yaw: float
    support: int | None = None  # index (in Room.objects) of the object it stands on

    @property
    def rotation(self) -> np.ndarray:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    @property
    def front(self) -> np.ndarray:
        """Unit xy vector the object faces (its local -Y)."""
        return (self.rotation @ np.array([0.0, -1.0, 0.0]))[:2]

    def to_world(self, points: np.ndarray) -> np.ndarray:
        return points @ self.rotation.T + self.position

    def aabb(self, extra_front: float = 0.0) -> np.ndarray:
        """World AABB [[min], [max]] of the parts' boxes; ``extra_front`` extends it forward (keep-out zone)."""
        lo, hi = self.furniture.extent.copy()
        lo[1] -= extra_front
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        world = self.to_world(corners)
        return np.array([world.min(axis=0), world.max(axis=0)])


@dataclass
class Room:
    """The room shell and its furniture (aligned frame)."""

    scene_type: str
    width: float  # along x
    depth: float  # along y
    height: float
    wall_color: str
    floor_color: str
    objects: list[PlacedObject] = field(default_factory=list)

    def wall_frame(self, wall: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(point at the wall's centre on the floor, inward unit normal, wall length) for walls 0..3 = S, E, N, W."""
        normals = [(0.0, 1.0), (-1.0, 0.0), (0.0, -1.0), (1.0, 0.0)]
        n = np.array(normals[wall])
        half = np.array([self.width / 2, self.depth / 2])
        centre = -n * half[np.argmax(np.abs(n))]
        length = self.width if wall in (0, 2) else self.depth
        return centre, n, length


def _yaw_facing(direction: np.ndarray) -> float:
    """The yaw that turns the local front (-Y) onto the xy ``direction``."""
    return float(np.arctan2(direction[0], -direction[1]))


def _overlaps(a: np.ndarray, b: np.ndarray, gap: float) -> bool:
    return bool(
        np.all(a[0, :2] < b[1, :2] + gap)
        and np.all(b[0, :2] < a[1, :2] + gap)
        and a[0, 2] < b[1, 2] - 1e-6
        and b[0, 2] < a[1, 2] - 1e-6
    )


def _propose(rng: np.random.Generator, room: Room, item: Item, furniture: Furniture) -> PlacedObject | None:
    """One random placement of ``furniture`` by the item's strategy (not yet checked for collisions)."""
    ext = furniture.extent
    back = ext[1, 1]  # distance from the local origin to the back face
    if item.place in ("wall", "corner", "hung"):
        wall = int(rng.integers(4))
        centre, n, length = room.wall_frame(wall)
        tangent = np.array([-n[1], n[0]])
        half_w = furniture.width / 2
        if length < 2 * half_w + 0.1:
            return None
        if item.place == "corner":
            along = float(rng.choice([-1.0, 1.0])) * (length / 2 - half_w - 0.05)
        else:
            along = float(rng.uniform(-length / 2 + half_w + 0.05, length / 2 - half_w - 0.05))
        xy = centre + n * (back + 0.02) + tangent * along
        z = float(rng.uniform(1.15, 1.45)) if item.place == "hung" else 0.0
        return PlacedObject(furniture, np.array([xy[0], xy[1], z]), _yaw_facing(n))
    if item.place == "free":
        margin = 0.6 + max(furniture.width, furniture.depth) / 2
        if room.width < 2 * margin or room.depth < 2 * margin:
            return None
        half = np.array([room.width / 2 - margin, room.depth / 2 - margin])
        xy = rng.uniform(-half, half)
        yaw = float(rng.integers(4)) * np.pi / 2 + float(rng.uniform(-0.15, 0.15))
        return PlacedObject(furniture, np.array([xy[0], xy[1], 0.0]), yaw)

    anchors = [i for i, o in enumerate(room.objects) if o.furniture.label in item.anchors]
    if not anchors:
        return None
    anchor_index = int(rng.choice(anchors))
    anchor = room.objects[anchor_index]
    a_ext = anchor.furniture.extent
    front = anchor.front
    side_dir = np.array([front[1], -front[0]])  # the anchor's local +X in the world
    if item.place == "on":
        surfaces = anchor.furniture.surfaces
        if not surfaces:
            return None
        surface = surfaces[int(rng.integers(len(surfaces)))]
        free = np.array(surface.size) - [furniture.width, furniture.depth] - 0.04
        if np.any(free < 0):
            return None
        local = np.array(surface.center, dtype=float)
        local[0] += rng.uniform(-free[0] / 2, free[0] / 2)
        if furniture.label in ("monitor", "tv", "pillow", "sink"):
            local[1] += free[1] / 2 - (ext[1, 1] + ext[0, 1]) / 2  # push to the back of the surface
        else:
            local[1] += rng.uniform(-free[1] / 2, free[1] / 2)
        world = anchor.to_world(np.array([local[0], local[1], surface.z]))
        yaw = anchor.yaw + (float(rng.uniform(-0.3, 0.3)) if furniture.label == "lamp" else 0.0)
        return PlacedObject(furniture, world, yaw, support=anchor_index)
    if item.place == "beside":
        side = float(rng.choice([-1.0, 1.0]))
        offset = (a_ext[1, 0] if side > 0 else -a_ext[0, 0]) + furniture.width / 2 + 0.06
        back_point = anchor.position[:2] - front * a_ext[1, 1]
        xy = back_point + front * back + side_dir * side * offset
        return PlacedObject(furniture, np.array([xy[0], xy[1], 0.0]), anchor.yaw)
    if item.place in ("front", "ahead"):
        gap = 0.08 if item.place == "front" else float(rng.uniform(0.35, 0.5))
        distance = -a_ext[0, 1] + gap + (back if item.place == "front" else -ext[0, 1])
        lateral = float(rng.uniform(-0.25, 0.25)) * max(0.0, anchor.furniture.width - furniture.width)
        xy = anchor.position[:2] + front * distance + side_dir * lateral
        yaw = anchor.yaw + np.pi if item.place == "front" else anchor.yaw
        return PlacedObject(furniture, np.array([xy[0], xy[1], 0.0]), float(yaw))
    if item.place == "around":
        k = int(rng.integers(4))
        local_dir = [np.array([0.0, -1.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([-1.0, 0.0])][k]
        half_along = (a_ext[1, 0] if k % 2 == 0 else a_ext[1, 1]) - furniture.width / 2
        reach = a_ext[1, 1] if k % 2 == 0 else a_ext[1, 0]
        lateral = float(rng.uniform(-1, 1)) * max(0.0, half_along - 0.05)
        local = local_dir * (reach + 0.08 + back) + np.array([-local_dir[1], local_dir[0]]) * lateral
        world = anchor.to_world(np.array([local[0], local[1], 0.0]))
        direction = -(anchor.rotation[:2, :2] @ local_dir)
        return PlacedObject(furniture, np.array([world[0], world[1], 0.0]), _yaw_facing(direction))
    raise ValueError(f"unknown placement strategy {item.place!r}")


def _fits(room: Room, candidate: PlacedObject) -> bool:
    """No overlap with the walls, other objects, keep-out zones, or (if tall) the camera's band."""
    box = candidate.aabb()
    half = np.array([room.width / 2, room.depth / 2])
    if np.any(box[0, :2] < -half - 1e-6) or np.any(box[1, :2] > half + 1e-6) or box[1, 2] > room.height - 0.05:
        return False
    keepout = candidate.aabb(candidate.furniture.front_clearance)
    for index, other in enumerate(room.objects):
        if index == candidate.support:
            continue
        other_box = other.aabb()
        if _overlaps(box, other_box, CLEARANCE):
            return False
        if candidate.support is None and other.support is None:
            if _overlaps(box, other.aabb(other.furniture.front_clearance), 0.0) or _overlaps(keepout, other_box, 0.0):
                return False
    if candidate.furniture.height + candidate.position[2] > TALL and not candidate.furniture.wall_hung:
        band = half - (CAMERA_MARGIN - 0.3)
        if np.all(box[1, :2] > -band) and np.all(box[0, :2] < band):
            return False
    return True


def layout_room(rng: np.random.Generator, scene_type: str | None = None) -> Room:
    """A random room of ``scene_type`` (one of ROOM_TYPES; drawn if None) with 8–25 placed objects."""
    if scene_type is None:
        scene_type = str(rng.choice(sorted(ROOM_TYPES)))
    if scene_type not in ROOM_TYPES:
        raise ValueError(f"unknown scene type {scene_type!r}; expected one of {sorted(ROOM_TYPES)}")
    room = Room(
        scene_type=scene_type,
        width=round(float(rng.uniform(4.0, 8.0)), 2),
        depth=round(float(rng.uniform(4.0, 8.0)), 2),
        height=round(float(rng.uniform(2.5, 3.0)), 2),
        wall_color=str(rng.choice(sorted(WALL_PALETTE))),
        floor_color=str(rng.choice(sorted(FLOOR_PALETTE))),
    )
    required, extras = ROOM_TYPES[scene_type]
    target = int(rng.integers(8, 26))

    def place(item: Item) -> bool:
        for _ in range(MAX_TRIES):
            candidate = _propose(rng, room, item, build_furniture(item.label, rng, item.variant))
            if candidate is not None and _fits(room, candidate):
                room.objects.append(candidate)
                return True
        return False

    for item in required:
        for _ in range(int(rng.integers(item.count[0], item.count[1] + 1))):
            if len(room.objects) < target:
                place(item)
    failures = 0
    while len(room.objects) < target and failures < 60:
        item = extras[int(rng.integers(len(extras)))]
        held = sum(o.furniture.label == item.label for o in room.objects)
        if held >= item.count[1] or not place(item):
            failures += 1
    return room
