"""Synthetic captures: one room rendered as posed RGB-D video with no annotation, in each capture layout.

A capture is what a user records (``ops.capture``): frames and poses only, no mesh, segments or aggregation. The
room is built and rendered as for a scan (``ops.synthetic.room``, ``.render``: the generator's aligned frame, +Z up,
floor at z = 0, OpenCV camera axes), then every pose is moved into the capture's own world frame by
``world_from_truth`` (any rigid transform: a phone app's world has an arbitrary origin and up axis) and stored in
the layout's convention:

- ``exported``: ScanNet's exported folders ``color/ depth/ pose/ intrinsic/`` (OpenCV axes, depth in mm);
- ``sens``: ``<name>.sens`` (OpenCV axes, depth in mm);
- ``nerfstudio``: ``transforms.json`` (``transform_matrix`` camera-to-world in OpenGL axes: x right, y up, z back),
  ``images/*.jpg`` and 16-bit ``depth/*.png`` in mm (``depth_unit_scale_factor`` 0.001) at a smaller size than the
  colour, as phone apps export, with one pinhole camera for both.

The truth (``CaptureTruth``) stays with the caller: the capture pipeline never reads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ops.core.atomic import staging_dir, write_bytes, write_text
from ops.scannet.scene_id import validate_scene_id
from ops.scannet.sens import SensFrame, SensHeader, encode_color, encode_depth, write_sens
from ops.scannet.writers import write_exported_frames
from ops.synthetic.generate import JPEG_QUALITY, objects_truth
from ops.synthetic.mesh import build_mesh
from ops.synthetic.render import Camera, RaycastRenderer, camera_path, color_intrinsics, scale_intrinsics
from ops.synthetic.room import layout_room
from ops.synthetic.truth import ObjectTruth

CAPTURE_LAYOUTS = ("exported", "nerfstudio", "sens")
OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])  # camera axes: flips y and z (its own inverse)


@dataclass
class CaptureTruth:
    """What a synthetic capture shows, in the generator's aligned frame (+Z up, floor at z = 0)."""

    name: str
    capture_dir: Path
    layout: str
    objects: list[ObjectTruth]  # furniture, floor and walls
    world_from_truth: np.ndarray  # 4x4 rigid: capture world point = world_from_truth @ aligned point
    poses: np.ndarray  # [N,4,4] camera-to-world in the aligned frame, OpenCV axes

    @property
    def furniture(self) -> list[ObjectTruth]:
        return [obj for obj in self.objects if not obj.is_structure]


def random_rigid_transform(rng: np.random.Generator) -> np.ndarray:
    """A rigid transform with a uniformly random rotation (any up axis) and a translation within ±5 m."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    rotation = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = rng.uniform(-5.0, 5.0, size=3)
    return out


def generate_capture(
    captures_dir: str | Path,
    name: str,
    seed: int,
    layout: str = "exported",
    world_from_truth: np.ndarray | None = None,
    n_frames: int = 60,
    color_size: tuple[int, int] = (320, 240),
    depth_size: tuple[int, int] = (160, 120),
    scene_type: str | None = None,
) -> CaptureTruth:
    """Render one room into ``captures_dir/<name>/`` in ``layout`` (replacing it atomically); return its truth.

    ``world_from_truth`` defaults to a seeded ``random_rigid_transform``. The room, camera path and images depend
    only on ``seed`` (and sizes), so two layouts or two transforms of one seed show the same room.
    """
    validate_scene_id(name)
    if layout not in CAPTURE_LAYOUTS:
        raise ValueError(f"layout must be one of {CAPTURE_LAYOUTS}, got {layout!r}")
    rng = np.random.default_rng(seed)
    room = layout_room(rng, scene_type)
    mesh = build_mesh(room, rng)
    group_ids = np.arange(len(mesh.groups))
    poses = camera_path(room, n_frames, rng)
    if world_from_truth is None:
        world_from_truth = random_rigid_transform(np.random.default_rng([seed, 1]))
    world_from_truth = np.asarray(world_from_truth, dtype=np.float64)
    k_color = color_intrinsics(*color_size)
    if layout == "nerfstudio":  # one camera: depth is the colour camera at the depth size
        k_depth = scale_intrinsics(k_color, depth_size[0] / color_size[0])
    else:
        k_depth = color_intrinsics(*depth_size)
    renderer = RaycastRenderer(mesh.vertices, mesh.faces, mesh.colors)
    images = renderer.render(poses, Camera(k_color, *color_size), Camera(k_depth, *depth_size))
    world_poses = np.einsum("ij,njk->nik", world_from_truth, poses)
    capture_dir = Path(captures_dir) / name
    with staging_dir(capture_dir) as tmp:
        if layout == "nerfstudio":
            _write_nerfstudio(tmp, images, world_poses, k_color, color_size, depth_size)
        else:
            header = SensHeader(
                color_width=color_size[0],
                color_height=color_size[1],
                depth_width=depth_size[0],
                depth_height=depth_size[1],
                intrinsic_color=_homogeneous(k_color),
                intrinsic_depth=_homogeneous(k_depth),
                num_frames=n_frames,
            )
            frames = _sens_frames(images, world_poses)
            if layout == "sens":
                write_sens(tmp / f"{name}.sens", header, frames)
            else:
                write_exported_frames(tmp, header, frames)
    objects = objects_truth(room, mesh.vertex_group, mesh.vertices, group_ids)
    return CaptureTruth(name, capture_dir, layout, objects, world_from_truth, poses)


def _sens_frames(images: Iterator[tuple[np.ndarray, np.ndarray]], poses: np.ndarray) -> Iterator[SensFrame]:
    for i, (rgb, depth) in enumerate(images):
        stamp = round(i * 1_000_000 / 30)
        yield SensFrame(poses[i], encode_color(rgb, JPEG_QUALITY), encode_depth(depth), stamp, stamp)


def _write_nerfstudio(
    out: Path,
    images: Iterator[tuple[np.ndarray, np.ndarray]],
    poses: np.ndarray,
    k_color: np.ndarray,
    color_size: tuple[int, int],
    depth_size: tuple[int, int],
) -> None:
    frames = []
    for i, (rgb, depth) in enumerate(images):
        if depth.shape[::-1] != tuple(depth_size):
            raise ValueError(f"depth rendered at {depth.shape[::-1]}, expected {depth_size}")
        color_file, depth_file = f"images/frame_{i + 1:05d}.jpg", f"depth/frame_{i + 1:05d}.png"
        write_bytes(out / color_file, encode_color(rgb, JPEG_QUALITY))
        ok, png = cv2.imencode(".png", depth)
        if not ok:
            raise ValueError(f"{out} frame {i}: PNG encoding failed")
        write_bytes(out / depth_file, png.tobytes())
        matrix = poses[i] @ OPENGL_FROM_OPENCV
        frames.append(
            {
                "file_path": color_file,
                "depth_file_path": depth_file,
                "transform_matrix": np.round(matrix, 9).tolist(),
            }
        )
    transforms = {
        "camera_model": "OPENCV",
        "fl_x": float(k_color[0, 0]),
        "fl_y": float(k_color[1, 1]),
        "cx": float(k_color[0, 2]),
        "cy": float(k_color[1, 2]),
        "w": int(color_size[0]),
        "h": int(color_size[1]),
        "k1": 0.0,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
        "depth_unit_scale_factor": 0.001,
        "frames": frames,
    }
    write_text(out / "transforms.json", json.dumps(transforms, indent=2) + "\n")


def _homogeneous(k: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = k
    return out
