"""Scene point clouds in the axis-aligned frame: ScanNet's own mesh vertices, or TSDF fusion of the RGB-D frames.

``mesh`` is what the paper's released data uses (ScanNet's BundleFusion reconstruction, ``_vh_clean_2.ply``):
the vertices in file order, so per-vertex annotations and Mask3D-style proposals index it directly.
``fusion`` integrates the posed frames into an Open3D ``ScalableTSDFVolume`` (open3d 0.19; 0.20's returns nothing)
and extracts its point cloud, sorted by (x, y, z) so that the output order does not depend on hash-map iteration.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Protocol

import cv2
import numpy as np

os.environ.setdefault("EGL_PLATFORM", "surfaceless")  # open3d must not probe for a display
import open3d as o3d  # noqa: E402


class RGBDFrame(Protocol):
    """What fusion needs of a frame (``ops.scannet.scene.Frame`` fits): RGB uint8, depth uint16, aligned 4x4 pose."""

    rgb: np.ndarray
    depth: np.ndarray
    pose: np.ndarray


def pointcloud_from_mesh(vertices: np.ndarray, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(coord float32 [P,3], color uint8 [P,3])`` from aligned mesh vertices and their RGB colours (order kept)."""
    vertices = np.asarray(vertices)
    colors = np.asarray(colors)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"mesh vertices must be [V,3], got {vertices.shape}")
    if colors.shape != vertices.shape:
        raise ValueError(f"mesh colors must be [V,3] like the vertices {vertices.shape}, got {colors.shape}")
    if not np.isfinite(vertices).all():
        raise ValueError("mesh vertices contain non-finite coordinates")
    return np.ascontiguousarray(vertices, dtype=np.float32), np.ascontiguousarray(colors, dtype=np.uint8)


def pointcloud_from_fusion(
    frames: Iterable[RGBDFrame],
    depth_intrinsics: np.ndarray,
    depth_shift: float,
    voxel_size: float = 0.02,
    sdf_trunc: float = 0.08,
    depth_trunc: float = 4.0,
    stride: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """TSDF-fuse every ``stride``-th frame with a finite pose; return ``(coord float32, color uint8)`` sorted by xyz.

    Depth is uint16 in ``1/depth_shift`` metres (0 = none); colour is resized to the depth size; ``voxel_size``,
    ``sdf_trunc`` and ``depth_trunc`` are metres. Each frame's extrinsic is the inverse of its camera-to-world pose.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    k = np.asarray(depth_intrinsics, dtype=np.float64)
    volume = o3d.pipelines.integration.ScalableTSDFVolume(
        voxel_length=voxel_size,
        sdf_trunc=sdf_trunc,
        color_type=o3d.pipelines.integration.TSDFVolumeColorType.RGB8,
    )
    integrated = 0
    for n, frame in enumerate(frames):
        pose = np.asarray(frame.pose, dtype=np.float64)
        if n % stride or not np.isfinite(pose).all():
            continue
        depth = np.ascontiguousarray(frame.depth, dtype=np.uint16)
        height, width = depth.shape
        rgb = np.ascontiguousarray(frame.rgb, dtype=np.uint8)
        if rgb.shape[:2] != (height, width):
            rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
            o3d.geometry.Image(rgb),
            o3d.geometry.Image(depth),
            depth_scale=float(depth_shift),
            depth_trunc=depth_trunc,
            convert_rgb_to_intensity=False,
        )
        intrinsic = o3d.camera.PinholeCameraIntrinsic(width, height, k[0, 0], k[1, 1], k[0, 2], k[1, 2])
        volume.integrate(rgbd, intrinsic, np.linalg.inv(pose))
        integrated += 1
    if integrated == 0:
        raise ValueError("no frame with a finite pose to fuse")
    cloud = volume.extract_point_cloud()
    coord = np.asarray(cloud.points, dtype=np.float32)
    color = np.clip(np.round(np.asarray(cloud.colors) * 255.0), 0, 255).astype(np.uint8)
    order = np.lexsort((color[:, 2], color[:, 1], color[:, 0], coord[:, 2], coord[:, 1], coord[:, 0]))
    return np.ascontiguousarray(coord[order]), np.ascontiguousarray(color[order])
