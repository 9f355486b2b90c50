"""The synthetic room as one mesh with ScanNet's over-segmentation, in the axis-aligned frame of ``ops.synthetic.room``.

The mesh is made of dense grids (about 4–5 cm spacing, so a room has ~50k–200k vertices like a
ScanNet ``_vh_clean_2.ply``). Open3D's ``create_box`` has no per-face resolution, so boxes are six grids built
here; cylinders come from Open3D's ``create_cylinder``. Bottom faces resting on the floor are left out (a scanner
never sees them). The over-segmentation is one segment per grid patch (0.5 m on furniture, 1 m on walls and
floor); as in ScanNet, a segment's id is the index of its first vertex.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from ops.synthetic.catalog import FLOOR_PALETTE, PALETTE, WALL_PALETTE
from ops.synthetic.parts import Part
from ops.synthetic.room import PlacedObject, Room

FURNITURE_SPACING = 0.04
SHELL_SPACING = 0.05
FURNITURE_PATCH = 0.5
SHELL_PATCH = 1.0


@dataclass
class SceneMesh:
    """The room as one mesh (aligned frame) with its labels.

    ``vertex_group`` indexes ``groups`` (each furniture object, then the floor, then the 4 walls);
    ``seg_indices`` is ScanNet's per-vertex segment id (the index of the segment's first vertex).
    """

    vertices: np.ndarray  # float64 [V,3]
    colors: np.ndarray  # uint8 [V,3]
    faces: np.ndarray  # int32 [F,3]
    seg_indices: np.ndarray  # int64 [V]
    vertex_group: np.ndarray  # int32 [V]
    groups: list[str]  # raw label of each group


class _MeshBuilder:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.vertices: list[np.ndarray] = []
        self.colors: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []
        self.keys: list[np.ndarray] = []
        self.groups: list[np.ndarray] = []
        self.count = 0
        self.next_key = 0

    def add(self, vertices: np.ndarray, faces: np.ndarray, keys: np.ndarray, color: np.ndarray, group: int) -> None:
        noise = self.rng.normal(0.0, 4.0, size=vertices.shape)
        self.vertices.append(vertices)
        self.colors.append(np.clip(color + noise, 0, 255))
        self.faces.append(faces + self.count)
        self.keys.append(keys)
        self.groups.append(np.full(len(vertices), group, dtype=np.int32))
        self.count += len(vertices)

    def grid(
        self, origin: np.ndarray, axis_a: np.ndarray, axis_b: np.ndarray, spacing: float, patch: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A rectangle origin + s*axis_a + t*axis_b (s, t in [0,1]) as a grid; normal = axis_a x axis_b."""
        la, lb = float(np.linalg.norm(axis_a)), float(np.linalg.norm(axis_b))
        na, nb = max(1, int(np.ceil(la / spacing - 1e-9))), max(1, int(np.ceil(lb / spacing - 1e-9)))
        s, t = np.meshgrid(np.linspace(0.0, 1.0, na + 1), np.linspace(0.0, 1.0, nb + 1), indexing="ij")
        points = origin + s.reshape(-1, 1) * axis_a + t.reshape(-1, 1) * axis_b
        i, j = np.meshgrid(np.arange(na), np.arange(nb), indexing="ij")
        v00 = (i * (nb + 1) + j).reshape(-1)
        v10, v01, v11 = v00 + nb + 1, v00 + 1, v00 + nb + 2
        faces = np.concatenate([np.stack([v00, v10, v01], 1), np.stack([v01, v10, v11], 1)]).astype(np.int64)
        pa, pb = max(1, int(np.ceil(la / patch))), max(1, int(np.ceil(lb / patch)))
        patch_a = np.minimum((s.reshape(-1) * la / patch).astype(np.int64), pa - 1)
        patch_b = np.minimum((t.reshape(-1) * lb / patch).astype(np.int64), pb - 1)
        keys = self.next_key + patch_a * pb + patch_b
        self.next_key += pa * pb
        return points, faces, keys

    def part(self, obj: PlacedObject, part: Part, group: int) -> None:
        tone = 1.0 + self.rng.normal(0.0, 0.03)
        color = np.array(PALETTE[part.color], dtype=np.float64) * tone
        centre = np.asarray(part.center, dtype=np.float64)
        size = np.asarray(part.size, dtype=np.float64)
        if part.shape == "cylinder":
            radius, height = size[0] / 2, size[2]
            mesh = o3d.geometry.TriangleMesh.create_cylinder(
                radius=radius,
                height=height,
                resolution=max(12, int(np.ceil(2 * np.pi * radius / FURNITURE_SPACING))),
                split=max(1, int(np.ceil(height / FURNITURE_SPACING))),
            )
            points = obj.to_world(np.asarray(mesh.vertices) + centre)
            keys = np.full(len(points), self.next_key, dtype=np.int64)
            self.next_key += 1
            self.add(points, np.asarray(mesh.triangles, dtype=np.int64), keys, color, group)
            return
        h = size / 2
        ex, ey, ez = np.diag(size)
        faces = [  # (origin offset, axis a, axis b) with a x b pointing outwards
            ((h[0], -h[1], -h[2]), ey, ez),
            ((-h[0], -h[1], -h[2]), ez, ey),
            ((-h[0], h[1], -h[2]), ez, ex),
            ((-h[0], -h[1], -h[2]), ex, ez),
            ((-h[0], -h[1], h[2]), ex, ey),
            ((-h[0], -h[1], -h[2]), ey, ex),
        ]
        for k, (offset, axis_a, axis_b) in enumerate(faces):
            if k == 5 and obj.position[2] + centre[2] - h[2] <= 1e-6:
                continue  # bottom face on the floor: never visible
            origin = centre + np.asarray(offset)
            points, tris, keys = self.grid(origin, axis_a, axis_b, FURNITURE_SPACING, FURNITURE_PATCH)
            self.add(obj.to_world(points), tris, keys, color, group)

    def build(self, groups: list[str]) -> SceneMesh:
        vertices = np.concatenate(self.vertices)
        keys = np.concatenate(self.keys)
        first_vertex = np.full(self.next_key, len(vertices), dtype=np.int64)
        np.minimum.at(first_vertex, keys, np.arange(len(vertices)))
        return SceneMesh(
            vertices=vertices,
            colors=np.concatenate(self.colors).round().astype(np.uint8),
            faces=np.concatenate(self.faces).astype(np.int32),
            seg_indices=first_vertex[keys],
            vertex_group=np.concatenate(self.groups),
            groups=groups,
        )


def build_mesh(room: Room, rng: np.random.Generator) -> SceneMesh:
    """Mesh the room: furniture groups 0..K-1 (in ``room.objects`` order), then the floor, then walls S, E, N, W."""
    builder = _MeshBuilder(rng)
    for index, obj in enumerate(room.objects):
        for part in obj.furniture.parts:
            builder.part(obj, part, index)
    k = len(room.objects)
    w, d, h = room.width, room.depth, room.height
    floor_points, floor_faces, floor_keys = builder.grid(
        np.array([-w / 2, -d / 2, 0.0]), np.array([w, 0.0, 0.0]), np.array([0.0, d, 0.0]), SHELL_SPACING, SHELL_PATCH
    )
    plank_gain = 1.0 + rng.normal(0.0, 0.06, size=int(np.ceil(w / 0.15)) + 1)
    plank = ((floor_points[:, 0] + w / 2) / 0.15).astype(np.int64)
    floor_color = np.array(FLOOR_PALETTE[room.floor_color], dtype=np.float64) * plank_gain[plank][:, None]
    builder.add(floor_points, floor_faces, floor_keys, floor_color, k)
    wall_color = np.array(WALL_PALETTE[room.wall_color], dtype=np.float64)
    up = np.array([0.0, 0.0, h])
    walls = [  # inward-facing: axis a x axis b points into the room
        (np.array([-w / 2, -d / 2, 0.0]), up, np.array([w, 0.0, 0.0])),
        (np.array([w / 2, -d / 2, 0.0]), up, np.array([0.0, d, 0.0])),
        (np.array([-w / 2, d / 2, 0.0]), np.array([w, 0.0, 0.0]), up),
        (np.array([-w / 2, -d / 2, 0.0]), np.array([0.0, d, 0.0]), up),
    ]
    for index, (origin, axis_a, axis_b) in enumerate(walls):
        points, faces, keys = builder.grid(origin, axis_a, axis_b, SHELL_SPACING, SHELL_PATCH)
        builder.add(points, faces, keys, wall_color, k + 1 + index)
    return builder.build([o.furniture.label for o in room.objects] + ["floor"] + ["wall"] * 4)
