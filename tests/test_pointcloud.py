"""Point clouds from a mesh and from TSDF fusion of RGB-D frames (open3d ScalableTSDFVolume)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from ops.prompts.pointcloud import pointcloud_from_fusion, pointcloud_from_mesh
from ops.prompts.writer import write_pointcloud

DEPTH_SIZE = (80, 60)  # width, height
K_DEPTH = np.array([[60.0, 0.0, 39.5], [0.0, 60.0, 29.5], [0.0, 0.0, 1.0]])


@dataclass
class Frame:
    rgb: np.ndarray
    depth: np.ndarray
    pose: np.ndarray


def _pose_looking_along_x(position) -> np.ndarray:
    """Camera-to-world pose at ``position`` looking along world +X, image up = world +Z (OpenCV camera axes)."""
    pose = np.eye(4)
    pose[:3, :3] = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # columns: x_c, y_c, z_c
    pose[:3, 3] = position
    return pose


def _wall_frames(distance_m: float = 2.0) -> list[Frame]:
    """Frames of a flat wall ``distance_m`` in front of a camera at (1, 2, 0.5) looking along +X; RGB at 2x size."""
    width, height = DEPTH_SIZE
    depth = np.full((height, width), int(distance_m * 1000), dtype=np.uint16)
    rgb = np.zeros((2 * height, 2 * width, 3), dtype=np.uint8)
    rgb[:] = (200, 30, 30)
    pose = _pose_looking_along_x((1.0, 2.0, 0.5))
    invalid = Frame(rgb, depth, np.full((4, 4), -np.inf))
    return [Frame(rgb, depth, pose), invalid, Frame(rgb, depth, pose)]


def test_mesh_keeps_vertex_order_and_types():
    vertices = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    colors = np.array([[1, 2, 3], [4, 5, 6]])
    coord, color = pointcloud_from_mesh(vertices, colors)
    assert coord.dtype == np.float32 and color.dtype == np.uint8
    np.testing.assert_array_equal(coord, vertices)
    np.testing.assert_array_equal(color, colors)


def test_mesh_rejects_bad_input():
    with pytest.raises(ValueError, match="colors"):
        pointcloud_from_mesh(np.zeros((3, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        pointcloud_from_mesh(np.array([[0.0, np.nan, 0.0]]), np.zeros((1, 3)))


def test_fusion_places_the_wall_in_world_coordinates_with_its_colour():
    coord, color = pointcloud_from_fusion(_wall_frames(), K_DEPTH, 1000.0, voxel_size=0.05, sdf_trunc=0.2)
    assert coord.dtype == np.float32 and color.dtype == np.uint8
    assert len(coord) > 100
    # the wall is the plane x = 1 + 2 = 3; the view spans y in 2 -/+ 2*40/60 and z in 0.5 -/+ 2*30/60
    np.testing.assert_allclose(np.median(coord[:, 0]), 3.0, atol=0.05)
    assert np.abs(coord[:, 0] - 3.0).max() < 0.1
    assert coord[:, 1].min() > 2.0 - 1.45 and coord[:, 1].max() < 2.0 + 1.45
    assert coord[:, 2].min() > 0.5 - 1.1 and coord[:, 2].max() < 0.5 + 1.1
    assert coord[:, 1].max() - coord[:, 1].min() > 2.0  # the whole width of the view was fused
    np.testing.assert_allclose(np.median(color, axis=0), (200, 30, 30), atol=2)


def test_fusion_is_sorted_and_repeatable():
    first = pointcloud_from_fusion(_wall_frames(), K_DEPTH, 1000.0, voxel_size=0.05, sdf_trunc=0.2)
    second = pointcloud_from_fusion(_wall_frames(), K_DEPTH, 1000.0, voxel_size=0.05, sdf_trunc=0.2)
    assert first[0].tobytes() == second[0].tobytes() and first[1].tobytes() == second[1].tobytes()
    coord = first[0]
    order = np.lexsort((coord[:, 2], coord[:, 1], coord[:, 0]))
    np.testing.assert_array_equal(order, np.arange(len(coord)))


def test_fusion_stride_and_depth_trunc():
    # depth_trunc below the wall distance leaves nothing to fuse in range
    coord, _ = pointcloud_from_fusion(_wall_frames(), K_DEPTH, 1000.0, voxel_size=0.05, depth_trunc=1.5)
    assert len(coord) == 0
    with pytest.raises(ValueError, match="stride"):
        pointcloud_from_fusion(_wall_frames(), K_DEPTH, 1000.0, stride=0)


def test_fusion_without_a_valid_pose_fails():
    frames = [f for f in _wall_frames() if not np.isfinite(f.pose).all()]
    with pytest.raises(ValueError, match="finite pose"):
        pointcloud_from_fusion(frames, K_DEPTH, 1000.0)


def test_write_pointcloud_folder(tmp_path):
    coord, color = pointcloud_from_fusion(_wall_frames(), K_DEPTH, 1000.0, voxel_size=0.05, sdf_trunc=0.2)
    write_pointcloud(tmp_path, coord, color)
    np.testing.assert_array_equal(np.load(tmp_path / "pointcloud" / "coord.npy"), coord)
    np.testing.assert_array_equal(np.load(tmp_path / "pointcloud" / "color.npy"), color)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pointcloud"]
