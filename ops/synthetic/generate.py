"""Synthetic ScanNet scenes and datasets, written in the real ScanNet file formats.

A scene is built in the axis-aligned frame (``ops.synthetic.room``), rendered by ray casting
(``ops.synthetic.render``), then stored in the *unaligned* frame: every vertex and pose is multiplied by A^-1,
where A (a seeded rotation about Z plus a translation) is written as ``axisAlignment`` in ``<scene>.txt``. A reader
that applies A, as ScanNet's tools do, recovers the aligned geometry that ``SceneTruth`` describes.

Files per scene (``scans/<scene_id>/``): ``<scene>.sens`` (or the exported ``color/ depth/ pose/ intrinsic/``
folders), ``<scene>_vh_clean_2.ply``, ``<scene>_vh_clean_2.0.010000.segs.json``, ``<scene>.aggregation.json`` and
``<scene>.txt``. The aggregation annotates every furniture object and also the floor and the four walls (labels
"floor" and "wall", as ScanNet does); object ids are a seeded permutation, so walls and floor sit anywhere in the
id range. ``invalid_pose_frames`` frames (seeded) get all -inf poses, as in ScanNet; their images are still stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ops.core.atomic import staging_dir
from ops.scannet.scene_id import validate_scene_id
from ops.scannet.sens import SensFrame, SensHeader, encode_color, encode_depth, write_sens
from ops.scannet.writers import (
    AggregationGroup,
    write_aggregation,
    write_exported_frames,
    write_mesh_ply,
    write_scene_meta,
    write_segs,
)
from ops.synthetic.annotations import write_annotations
from ops.synthetic.mesh import build_mesh
from ops.synthetic.render import Camera, RaycastRenderer, camera_path, color_intrinsics, depth_intrinsics
from ops.synthetic.room import ROOM_TYPES, Room, layout_room
from ops.synthetic.truth import DatasetTruth, ObjectTruth, SceneTruth

LAYOUTS = ("sens", "exported")
FPS = 30
JPEG_QUALITY = 90


def _axis_alignment(rng: np.random.Generator) -> np.ndarray:
    """A (aligned = A @ unaligned): rotation about Z by a seeded angle plus a translation, rounded to the ``%f``
    precision of <scene>.txt so the matrix used here is the one readers parse."""
    angle = rng.uniform(-np.pi, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    a = np.array(
        [
            [c, -s, 0.0, rng.uniform(-4.0, 4.0)],
            [s, c, 0.0, rng.uniform(-4.0, 4.0)],
            [0.0, 0.0, 1.0, rng.uniform(-0.1, 0.1)],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    return np.round(a, 6)


def _check_size(name: str, size: tuple[int, int]) -> tuple[int, int]:
    width, height = (int(v) for v in size)
    if width < 8 or height < 8 or width > 8192 or height > 8192:
        raise ValueError(f"{name} must be (width, height) between 8 and 8192 pixels, got {size}")
    return width, height


def objects_truth(room: Room, mesh_groups: np.ndarray, vertices: np.ndarray, ids: np.ndarray) -> list[ObjectTruth]:
    """Per-group truth, ``ids[g]`` being the object id of mesh group ``g``."""
    objects: list[ObjectTruth] = []
    n_furniture = len(room.objects)
    for group, object_id in enumerate(ids):
        points = vertices[mesh_groups == group]
        if group < n_furniture:
            placed = room.objects[group]
            truth = ObjectTruth(
                object_id=int(object_id),
                label=placed.furniture.label,
                color=placed.furniture.color,
                aabb_min=points.min(axis=0),
                aabb_max=points.max(axis=0),
                front=placed.front,
                support_id=None if placed.support is None else int(ids[placed.support]),
                wall_hung=placed.furniture.wall_hung,
            )
        else:
            label = "floor" if group == n_furniture else "wall"
            color = room.floor_color if label == "floor" else room.wall_color
            truth = ObjectTruth(int(object_id), label, color, points.min(axis=0), points.max(axis=0))
        objects.append(truth)
    return sorted(objects, key=lambda o: o.object_id)


def generate_scene(
    scans_dir: str | Path,
    scene_id: str,
    seed: int,
    n_frames: int = 300,
    color_size: tuple[int, int] = (1296, 968),
    depth_size: tuple[int, int] = (640, 480),
    invalid_pose_frames: int = 3,
    layout: str = "sens",
    scene_type: str | None = None,
    color_render_scale: float | None = None,
) -> SceneTruth:
    """Generate one synthetic scene into ``scans_dir/<scene_id>/`` (replacing it atomically) and return its truth.

    ``scene_type`` is one of ``ROOM_TYPES`` (ScanNet sceneType names; drawn from the seed if None).
    Colour is ray cast at ``color_render_scale`` x ``color_size`` and resized bilinearly (default: 0.5 above
    800 px width, else 1.0); depth is always cast at ``depth_size``.
    """
    validate_scene_id(scene_id)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if not 0 <= invalid_pose_frames < n_frames:
        raise ValueError(f"invalid_pose_frames must be in [0, n_frames), got {invalid_pose_frames} of {n_frames}")
    color_w, color_h = _check_size("color_size", color_size)
    depth_w, depth_h = _check_size("depth_size", depth_size)
    if color_render_scale is None:
        color_render_scale = 0.5 if color_w > 800 else 1.0
    if not 0.1 <= color_render_scale <= 1.0:
        raise ValueError(f"color_render_scale must be in [0.1, 1], got {color_render_scale}")

    rng = np.random.default_rng(seed)
    room = layout_room(rng, scene_type)
    mesh = build_mesh(room, rng)
    n_groups = len(mesh.groups)
    group_ids = rng.permutation(n_groups)  # object id of each mesh group
    axis_alignment = _axis_alignment(rng)
    unalign = np.linalg.inv(axis_alignment)
    poses = camera_path(room, n_frames, rng)
    invalid = np.sort(rng.choice(n_frames, size=invalid_pose_frames, replace=False))
    valid = np.ones(n_frames, dtype=bool)
    valid[invalid] = False

    k_color, k_depth = color_intrinsics(color_w, color_h), depth_intrinsics(depth_w, depth_h)
    renderer = RaycastRenderer(mesh.vertices, mesh.faces, mesh.colors)
    header = SensHeader(
        color_width=color_w,
        color_height=color_h,
        depth_width=depth_w,
        depth_height=depth_h,
        intrinsic_color=_homogeneous(k_color),
        intrinsic_depth=_homogeneous(k_depth),
        num_frames=n_frames,
    )

    def frames() -> Iterator[SensFrame]:
        images = renderer.render(
            poses, Camera(k_color, color_w, color_h), Camera(k_depth, depth_w, depth_h), color_render_scale
        )
        for i, (rgb, depth) in enumerate(images):
            stored_pose = unalign @ poses[i] if valid[i] else np.full((4, 4), -np.inf)
            stamp = round(i * 1_000_000 / FPS)
            yield SensFrame(stored_pose, encode_color(rgb, JPEG_QUALITY), encode_depth(depth), stamp, stamp)

    unaligned_vertices = mesh.vertices @ unalign[:3, :3].T + unalign[:3, 3]
    groups = [
        AggregationGroup(int(group_ids[g]), label, np.unique(mesh.seg_indices[mesh.vertex_group == g]).tolist())
        for g, label in enumerate(mesh.groups)
    ]
    meta = {
        "axisAlignment": axis_alignment,
        "colorHeight": color_h,
        "colorToDepthExtrinsics": np.eye(4),
        "colorWidth": color_w,
        "depthHeight": depth_h,
        "depthWidth": depth_w,
        "fx_color": k_color[0, 0],
        "fx_depth": k_depth[0, 0],
        "fy_color": k_color[1, 1],
        "fy_depth": k_depth[1, 1],
        "mx_color": k_color[0, 2],
        "mx_depth": k_depth[0, 2],
        "my_color": k_color[1, 2],
        "my_depth": k_depth[1, 2],
        "numColorFrames": n_frames,
        "numDepthFrames": n_frames,
        "numIMUmeasurements": 0,
        "sceneType": room.scene_type,
    }
    scene_dir = Path(scans_dir) / scene_id
    with staging_dir(scene_dir) as tmp:
        ply = tmp / f"{scene_id}_vh_clean_2.ply"
        write_mesh_ply(ply, unaligned_vertices.astype(np.float32), mesh.colors, mesh.faces)
        write_segs(tmp / f"{scene_id}_vh_clean_2.0.010000.segs.json", scene_id, mesh.seg_indices)
        write_aggregation(tmp / f"{scene_id}.aggregation.json", scene_id, sorted(groups, key=lambda g: g.object_id))
        write_scene_meta(tmp / f"{scene_id}.txt", meta)
        if layout == "sens":
            write_sens(tmp / f"{scene_id}.sens", header, frames())
        else:
            write_exported_frames(tmp, header, frames())

    return SceneTruth(
        scene_id=scene_id,
        scene_dir=scene_dir,
        seed=int(seed),
        scene_type=room.scene_type,
        layout=layout,
        room_size=(room.width, room.depth, room.height),
        axis_alignment=axis_alignment,
        objects=objects_truth(room, mesh.vertex_group, mesh.vertices, group_ids),
        poses=poses,
        valid=valid,
        color_size=(color_w, color_h),
        depth_size=(depth_w, depth_h),
        color_intrinsics=k_color,
        depth_intrinsics=k_depth,
        vertex_object_ids=group_ids[mesh.vertex_group].astype(np.int32),
        num_faces=len(mesh.faces),
        num_segments=len(np.unique(mesh.seg_indices)),
    )


def _homogeneous(k: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = k
    return out


def scene_seed(seed: int, index: int) -> int:
    """The seed of scene ``index`` in a dataset generated with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def generate_dataset(
    out_dir: str | Path,
    n_scenes: int,
    seed: int,
    n_frames: int = 300,
    color_size: tuple[int, int] = (1296, 968),
    depth_size: tuple[int, int] = (640, 480),
    val_fraction: float = 0.25,
    invalid_pose_frames: int = 3,
    layout: str = "sens",
) -> DatasetTruth:
    """Generate ``n_scenes`` scenes (``scene0000_00``, ``scene0001_00``, ...) into ``out_dir/scans/`` and the
    benchmark annotations, split files and label map into ``out_dir/annotations/``.

    Room types cycle through ``ROOM_TYPES`` in a seeded order, so even a few scenes cover many categories.
    ``round(n_scenes * val_fraction)`` scenes (at least one when there are two or more) go to the val split.
    """
    if n_scenes < 1:
        raise ValueError(f"n_scenes must be >= 1, got {n_scenes}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    types = [str(t) for t in rng.permutation(sorted(ROOM_TYPES))]
    scenes = [
        generate_scene(
            out_dir / "scans",
            f"scene{index:04d}_00",
            scene_seed(seed, index),
            n_frames=n_frames,
            color_size=color_size,
            depth_size=depth_size,
            invalid_pose_frames=invalid_pose_frames,
            layout=layout,
            scene_type=types[index % len(types)],
        )
        for index in range(n_scenes)
    ]
    n_val = round(n_scenes * val_fraction)
    if n_scenes >= 2 and val_fraction > 0:
        n_val = min(max(n_val, 1), n_scenes - 1)
    val_index = set(rng.choice(n_scenes, size=n_val, replace=False).tolist())
    train_ids = [s.scene_id for i, s in enumerate(scenes) if i not in val_index]
    val_ids = [s.scene_id for i, s in enumerate(scenes) if i in val_index]
    files = write_annotations(out_dir / "annotations", scenes, train_ids, val_ids, seed)
    return DatasetTruth(out_dir, scenes, train_ids, val_ids, files)
