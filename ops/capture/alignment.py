"""The floor plane and up axis of a capture, estimated from its fused point cloud (no axis-alignment file).

Input frame: the capture's own world (any origin, any up axis), poses with OpenCV camera axes. Output:
``aligned_from_world`` (4x4 rigid) mapping it to the aligned frame the prompts use: metres, +Z up, floor at z = 0,
and (when walls are found) the walls parallel to the X and Y axes, as ScanNet's ``axisAlignment`` makes them.

Method: planes are fitted one after another by RANSAC (Open3D ``segment_plane``) on a voxel sample of the cloud.
The floor is the plane with the most inliers among those whose normal lies within ``max_tilt_deg`` of the
cameras' mean up direction (a camera's up is its -y axis: people film upright, so the mean over a video is close
to gravity) and which lies below the camera centres; its normal, refined by a least-squares fit to its inliers and
oriented towards the cameras, is the up axis. The rotation taking it to +Z is the smallest one; the remaining
rotation about Z is chosen so that the vertical planes' normals (walls) fall on the X and Y axes (the inlier-weighted
circular mean of four times their angles). When no plane qualifies as floor, the cameras' up is used, with the floor
at the 1st percentile of heights along it (``method`` says which).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

os.environ.setdefault("EGL_PLATFORM", "surfaceless")  # open3d must not probe for a display
import open3d as o3d  # noqa: E402


@dataclass(frozen=True)
class FloorAlignment:
    """``aligned_from_world`` 4x4; ``up`` (unit, capture world), the floor ``plane`` [a,b,c,d] in the capture world
    (a x + b y + c z + d = 0, normal = up), ``method`` (``ransac_floor`` or ``camera_up``), ``walls`` (vertical planes
    used for the yaw) and ``floor_inliers``."""

    aligned_from_world: np.ndarray
    up: np.ndarray
    plane: np.ndarray
    method: str
    floor_inliers: int = 0
    walls: int = 0
    yaw_deg: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "aligned_from_world": np.round(self.aligned_from_world, 9).tolist(),
            "up": np.round(self.up, 9).tolist(),
            "floor_plane": np.round(self.plane, 9).tolist(),
            "method": self.method,
            "floor_inliers": self.floor_inliers,
            "walls": self.walls,
            "yaw_deg": round(self.yaw_deg, 6),
        }


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation (3x3) taking unit vector ``a`` to unit vector ``b``."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    axis = np.cross(a, b)
    sin, cos = np.linalg.norm(axis), float(np.dot(a, b))
    if sin < 1e-12:
        if cos > 0:
            return np.eye(3)
        other = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        axis = np.cross(a, other)
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)  # 180 degrees about an axis normal to a
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]]) / sin
    return np.eye(3) + sin * k + (1 - cos) * (k @ k)


def _rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _voxel_sample(coord: np.ndarray, voxel: float) -> np.ndarray:
    """One point per ``voxel`` cube, the first in array order (deterministic, evenly dense)."""
    _, first = np.unique(np.floor(coord / voxel).astype(np.int64), axis=0, return_index=True)
    return coord[np.sort(first)]


def _refined_normal(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane of ``points``: unit normal and offset d (n·x + d = 0)."""
    centre = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centre, full_matrices=False)
    normal = vt[2]
    return normal, -float(normal @ centre)


def estimate_floor_alignment(
    coord: np.ndarray,
    camera_to_world: np.ndarray,
    seed: int = 0,
    sample_voxel: float = 0.05,
    plane_distance: float = 0.03,
    max_planes: int = 8,
    min_plane_fraction: float = 0.03,
    max_tilt_deg: float = 35.0,
) -> FloorAlignment:
    """The floor alignment of a cloud ``coord`` [P,3] filmed from the valid poses ``camera_to_world`` [N,4,4]
    (capture world, OpenCV axes); module docstring. Deterministic for the same inputs and ``seed``."""
    coord = np.asarray(coord, dtype=np.float64)
    poses = np.asarray(camera_to_world, dtype=np.float64)
    poses = poses[np.isfinite(poses).all(axis=(1, 2))]
    if len(coord) < 3 or len(poses) == 0:
        raise ValueError("floor alignment needs a point cloud and at least one valid pose")
    centres = poses[:, :3, 3]
    camera_up = -poses[:, :3, 1].mean(axis=0)
    camera_up /= max(np.linalg.norm(camera_up), 1e-12)
    sample = _voxel_sample(coord, sample_voxel)
    min_points = max(3, int(min_plane_fraction * len(sample)))
    planes: list[tuple[np.ndarray, float, np.ndarray]] = []  # (normal, d, inlier points)
    rest = sample
    for _ in range(max_planes):
        if len(rest) < min_points:
            break
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(rest))
        o3d.utility.random.seed(seed)
        _, inliers = cloud.segment_plane(plane_distance, 3, 1000)
        if len(inliers) < min_points:
            break
        points = rest[np.asarray(inliers)]
        normal, offset = _refined_normal(points)
        planes.append((normal, offset, points))
        rest = np.delete(rest, inliers, axis=0)

    cos_tilt = np.cos(np.deg2rad(max_tilt_deg))
    floor = None
    for normal, offset, points in planes:
        if np.dot(normal, camera_up) < 0:
            normal, offset = -normal, -offset
        below_cameras = np.median(centres @ normal + offset) > 0
        if np.dot(normal, camera_up) >= cos_tilt and below_cameras:
            if floor is None or len(points) > len(floor[2]):
                floor = (normal, offset, points)
    if floor is not None:
        up, offset, floor_points = floor
        method = "ransac_floor"
    else:
        up, floor_points, method = camera_up, np.zeros((0, 3)), "camera_up"
        offset = -float(np.percentile(coord @ up, 1.0))
    tilt = rotation_between(up, np.array([0.0, 0.0, 1.0]))

    walls = [(n, len(p)) for n, _, p in planes if abs(np.dot(n, up)) < np.sin(np.deg2rad(10.0))]
    yaw = 0.0
    if walls:
        angles = np.array([np.arctan2(*(tilt @ n)[[1, 0]]) for n, _ in walls])
        weights = np.array([count for _, count in walls], dtype=np.float64)
        yaw = -float(np.arctan2((weights * np.sin(4 * angles)).sum(), (weights * np.cos(4 * angles)).sum()) / 4)
    rotation = _rotation_z(yaw) @ tilt
    aligned = np.eye(4)
    aligned[:3, :3] = rotation
    aligned[2, 3] = offset  # the floor (up·x + offset = 0) goes to z = 0
    return FloorAlignment(
        aligned_from_world=aligned,
        up=up,
        plane=np.append(up, offset),
        method=method,
        floor_inliers=len(floor_points),
        walls=len(walls),
        yaw_deg=float(np.rad2deg(yaw)),
    )
