"""Tiny ScanNet scene files assembled by hand from the published layouts (docs/REFERENCE.md §1).

Nothing here uses the project's writers (``ops.scannet.sens.write_sens``, ``ops.scannet.writers``): the ``.sens`` and
the PLY are packed field by field with ``struct``, the JSON and ``<scene>.txt`` are written as literal text, and only
the JPEG/PNG payloads come from OpenCV. The readers are tested against these files and the constants below.

Every pose entry is exactly representable in float32 and in ``%f`` text, so the ``.sens`` and the exported
layout hold identical poses.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SCENE_ID = "scene0007_01"
SENSOR_NAME = b"StructureSensor"
COLOR_SIZE = (32, 24)  # (width, height)
DEPTH_SIZE = (16, 12)
DEPTH_SHIFT = 1000.0
JPEG_QUALITY = 95

INTRINSIC_COLOR = np.array([[30, 0, 15.5, 0], [0, 31, 11.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]], np.float32)
INTRINSIC_DEPTH = np.array([[15, 0, 7.5, 0], [0, 15.5, 5.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]], np.float32)
EXTRINSIC_COLOR = np.array([[1, 0, 0, 0.25], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], np.float32)
EXTRINSIC_DEPTH = np.array([[1, 0, 0, 0], [0, 1, 0, -0.125], [0, 0, 1, 0], [0, 0, 0, 1]], np.float32)


def _pose(rotation: list[list[float]], translation: list[float]) -> np.ndarray:
    pose = np.eye(4, dtype=np.float32)
    pose[:3, :3] = rotation
    pose[:3, 3] = translation
    return pose


_IDENTITY = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
_NAN_POSE = _pose(_IDENTITY, [0.5, 0.5, 0.5])
_NAN_POSE[1, 2] = np.nan
# Camera-to-world, unaligned. Frame 2 is ScanNet's invalid marker (all -inf); frame 3 has a single NaN entry.
POSES = np.stack(
    [
        _pose(_IDENTITY, [0.5, 0.0, 1.25]),
        _pose([[1, 0, 0], [0, 0, -1], [0, 1, 0]], [1.0, 2.0, 0.75]),  # 90 degrees about +X
        np.full((4, 4), -np.inf, np.float32),
        _NAN_POSE,
        _pose([[0, 1, 0], [-1, 0, 0], [0, 0, 1]], [-1.5, 0.25, 1.5]),  # -90 degrees about +Z
    ]
)
NUM_FRAMES = len(POSES)
VALID = np.array([True, True, False, False, True])
TIMESTAMPS = [(1000 * i + 7, 1000 * i + 11) for i in range(NUM_FRAMES)]

# axisAlignment: +90 degrees about +Z, then translate by (1, 2, 3): (x, y, z) -> (1 - y, 2 + x, 3 + z).
AXIS_ALIGNMENT = np.array([[0, -1, 0, 1], [1, 0, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]], np.float64)

# Mesh: 9 vertices, float32-exact coordinates, colours using the extremes 0 and 255.
VERTICES = np.array(
    [[1, 0, 0], [2, 0, 0], [2, 1, 0], [1, 1, 1], [0, 0, 0], [0, 3, 0], [-1, -2, 0.5], [-2, -2, 0.5], [-1.5, -1, 2]],
    np.float32,
)
COLORS = np.array(
    [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [1, 2, 3],
        [254, 253, 252],
        [128, 127, 129],
        [0, 0, 0],
        [255, 255, 255],
        [17, 99, 201],
    ],
    np.uint8,
)
FACES = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 0], [6, 7, 8], [8, 3, 5]], np.int32)
SEG_INDICES = [10, 10, 10, 10, 11, 11, 12, 12, 13]
# segGroups as stored (not sorted by objectId): chair = segment 10, table = segments 12 and 13; 11 is unannotated.
SEG_GROUPS = [
    {"id": 3, "objectId": 3, "segments": [10], "label": "chair"},
    {"id": 0, "objectId": 0, "segments": [12, 13], "label": "table"},
]
VERTEX_OBJECT_IDS = np.array([3, 3, 3, 3, -1, -1, 0, 0, 0], np.int32)

SCENE_TXT = (
    "axisAlignment = 0 -1 0 1 1 0 0 2 0 0 1 3 0 0 0 1 \n"
    "colorHeight = 24\n"
    "colorToDepthExtrinsics = 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n"
    "colorWidth = 32\n"
    "depthHeight = 12\n"
    "depthWidth = 16\n"
    "fx_color = 30.000000\n"
    "fx_depth = 15.000000\n"
    "fy_color = 31.000000\n"
    "fy_depth = 15.500000\n"
    "mx_color = 15.500000\n"
    "mx_depth = 7.500000\n"
    "my_color = 11.500000\n"
    "my_depth = 5.500000\n"
    "numColorFrames = 5\n"
    "numDepthFrames = 5\n"
    "numIMUmeasurements = 0\n"
    "sceneType = Bedroom / Hotel\n"
)


def frame_rgb(index: int) -> np.ndarray:
    """A smooth RGB uint8 image (JPEG keeps it within a few levels), different per frame."""
    width, height = COLOR_SIZE
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    return np.stack([u * 7 + 10 * index, v * 9 + 5, (u + v) * 3 + 40 * index], axis=-1).clip(0, 255).astype(np.uint8)


def frame_depth(index: int) -> np.ndarray:
    """uint16 depth in mm covering 0 (no measurement) and 65535, different per frame."""
    width, height = DEPTH_SIZE
    depth = (np.arange(width * height, dtype=np.uint32).reshape(height, width) * 331 + 1000 * index) % 65536
    depth[0, 0], depth[-1, -1] = 0, 65535
    return depth.astype(np.uint16)


def jpeg_bytes(index: int) -> bytes:
    bgr = cv2.cvtColor(frame_rgb(index), cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert ok
    return data.tobytes()


def zlib_depth_bytes(index: int) -> bytes:
    return zlib.compress(frame_depth(index).astype("<u2").tobytes())


@dataclass
class SensBytes:
    """An assembled ``.sens``: the bytes, where the header ends, and where each frame's 96-byte header starts."""

    data: bytes
    header_size: int
    frame_starts: list[int]


def assemble_sens(
    version: int = 4, num_frames: int | None = None, depth_payloads: list[bytes] | None = None
) -> SensBytes:
    """The tiny ``.sens`` of this module, packed field by field (v4 layout, little-endian).

    ``num_frames`` overrides the count written in the header; ``depth_payloads`` the compressed depth of each frame.
    """
    header = struct.pack("<I", version)
    header += struct.pack("<Q", len(SENSOR_NAME)) + SENSOR_NAME
    for matrix in (INTRINSIC_COLOR, EXTRINSIC_COLOR, INTRINSIC_DEPTH, EXTRINSIC_DEPTH):
        header += struct.pack("<16f", *matrix.reshape(16).tolist())  # row-major
    header += struct.pack("<ii", 2, 1)  # colour JPEG, depth zlib_ushort
    header += struct.pack("<IIII", *COLOR_SIZE, *DEPTH_SIZE)
    header += struct.pack("<f", DEPTH_SHIFT)
    header += struct.pack("<Q", NUM_FRAMES if num_frames is None else num_frames)
    data = bytearray(header)
    starts = []
    for index in range(NUM_FRAMES):
        color = jpeg_bytes(index)
        depth = depth_payloads[index] if depth_payloads is not None else zlib_depth_bytes(index)
        starts.append(len(data))
        data += struct.pack("<16f", *POSES[index].reshape(16).tolist())
        data += struct.pack("<QQ", *TIMESTAMPS[index])
        data += struct.pack("<QQ", len(color), len(depth))
        data += color + depth
    return SensBytes(bytes(data), len(header), starts)


def ply_bytes(vertices: np.ndarray = VERTICES, colors: np.ndarray = COLORS, faces: np.ndarray = FACES) -> bytes:
    """ScanNet's ``_vh_clean_2.ply`` layout: binary little-endian, x y z float, red green blue alpha uchar,
    faces ``list uchar int vertex_indices``."""
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment VCGLIB generated\n"
        f"element vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar alpha\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode("ascii")
    body = b"".join(struct.pack("<fffBBBB", *v.tolist(), *c.tolist(), 255) for v, c in zip(vertices, colors))
    body += b"".join(struct.pack("<Biii", 3, *f.tolist()) for f in faces)
    return header + body


def segs_json(scene_id: str = SCENE_ID) -> str:
    params = {
        "kThresh": "0.0001",
        "segMinVerts": "20",
        "minPoints": "750",
        "maxPoints": "5000",
        "thinThresh": "0.05",
        "flatThresh": "0.001",
        "minLength": "0.02",
        "maxLength": "1",
    }
    return json.dumps({"params": params, "sceneId": scene_id, "segIndices": SEG_INDICES})


def aggregation_json(scene_id: str = SCENE_ID) -> str:
    return json.dumps(
        {
            "sceneId": f"scannet.{scene_id}",
            "appId": "Aggregator.v2",
            "segGroups": SEG_GROUPS,
            "segmentsFile": f"scannet.{scene_id}_vh_clean_2.0.010000.segs.json",
        }
    )


def _matrix_text(matrix: np.ndarray) -> str:
    """As ScanNet's SensReader ``save_mat_to_file``: one ``%f`` row per line."""
    return "".join(" ".join(f"{v:f}" for v in row) + "\n" for row in np.asarray(matrix, np.float64))


def write_scene(root: Path, layout: str = "sens", scene_id: str = SCENE_ID) -> Path:
    """A complete scene folder ``root/scene_id`` with frames as ``.sens`` or in SensReader's exported layout."""
    scene = Path(root) / scene_id
    scene.mkdir(parents=True)
    (scene / f"{scene_id}_vh_clean_2.ply").write_bytes(ply_bytes())
    (scene / f"{scene_id}_vh_clean_2.0.010000.segs.json").write_text(segs_json(scene_id))
    (scene / f"{scene_id}.aggregation.json").write_text(aggregation_json(scene_id))
    (scene / f"{scene_id}.txt").write_text(SCENE_TXT)
    if layout == "sens":
        (scene / f"{scene_id}.sens").write_bytes(assemble_sens().data)
    elif layout == "exported":
        write_exported_frames(scene)
    else:
        raise ValueError(layout)
    return scene


def write_exported_frames(scene: Path) -> None:
    """``color/<i>.jpg`` (the ``.sens`` JPEG bytes), ``depth/<i>.png`` (uint16), ``pose/<i>.txt``, ``intrinsic/``."""
    for folder in ("color", "depth", "pose", "intrinsic"):
        (scene / folder).mkdir()
    for name, matrix in (
        ("intrinsic_color", INTRINSIC_COLOR),
        ("extrinsic_color", EXTRINSIC_COLOR),
        ("intrinsic_depth", INTRINSIC_DEPTH),
        ("extrinsic_depth", EXTRINSIC_DEPTH),
    ):
        (scene / "intrinsic" / f"{name}.txt").write_text(_matrix_text(matrix))
    for index in range(NUM_FRAMES):
        (scene / "color" / f"{index}.jpg").write_bytes(jpeg_bytes(index))
        ok, png = cv2.imencode(".png", frame_depth(index))
        assert ok
        (scene / "depth" / f"{index}.png").write_bytes(png.tobytes())
        (scene / "pose" / f"{index}.txt").write_text(_matrix_text(POSES[index]))
