"""Camera path, intrinsics and RGB-D rendering by ray casting (Open3D ``RaycastingScene``, headless, CPU).

Poses are 4x4 camera-to-world in the aligned frame, OpenCV camera axes (x right, y down, z forward).
Rays are built as ``R @ K^-1 [u, v, 1]`` (pixel centres at integer coordinates), so a ray's hit parameter
``t_hit`` is the z-depth itself. Depth is uint16 millimetres, 0 where a ray hits nothing (above the walls: there is
no ceiling). Colour is the barycentric blend of the hit triangle's vertex colours, each times a fixed Lambertian
shading (two directional lights plus ambient, on Open3D's vertex normals), so a surface looks the same from every
frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np
import open3d as o3d

from ops.synthetic.room import CAMERA_MARGIN, Room

SCANNET_COLOR_FOCAL = 1170.187988  # fx = fy of ScanNet's colour camera at 1296 px width
SCANNET_DEPTH_FOCAL = 577.870605  # fx = fy of ScanNet's depth camera at 640 px width
BACKGROUND_RGB = (205, 205, 210)  # where a ray leaves the room upwards (a ceiling would be there)
_LIGHTS = np.array([[0.25, 0.15, 0.9], [-0.45, 0.6, 0.25]])
_LIGHTS = _LIGHTS / np.linalg.norm(_LIGHTS, axis=1, keepdims=True)
_LIGHT_WEIGHTS = np.array([0.45, 0.2])
_AMBIENT = 0.42


def pinhole_intrinsics(width: int, height: int, focal_at_native: float, native_width: int) -> np.ndarray:
    """3x3 K with ScanNet's field of view scaled to ``width``; principal point at the image centre."""
    f = focal_at_native * width / native_width
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def color_intrinsics(width: int, height: int) -> np.ndarray:
    """ScanNet-like colour intrinsics (fx = fy = 1170.19 at 1296 px)."""
    return pinhole_intrinsics(width, height, SCANNET_COLOR_FOCAL, 1296)


def depth_intrinsics(width: int, height: int) -> np.ndarray:
    """ScanNet-like depth intrinsics (fx = fy = 577.87 at 640 px)."""
    return pinhole_intrinsics(width, height, SCANNET_DEPTH_FOCAL, 640)


def scale_intrinsics(k: np.ndarray, scale: float) -> np.ndarray:
    """K for the same camera with the image resized by ``scale`` (pixel-centre convention)."""
    out = k.copy()
    out[:2, :2] *= scale
    out[:2, 2] = (k[:2, 2] + 0.5) * scale - 0.5
    return out


def _smooth_noise(rng: np.random.Generator, phase: np.ndarray, amplitude: float, terms: int = 3) -> np.ndarray:
    """A smooth periodic wiggle along ``phase`` (radians): a few sines with seeded frequencies and offsets."""
    freqs = rng.integers(2, 9, size=terms)
    offsets = rng.uniform(0, 2 * np.pi, size=terms)
    return amplitude * sum(np.sin(f * phase + o) for f, o in zip(freqs, offsets)) / terms


def look_at(position: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world pose at ``position`` looking at ``target`` (OpenCV axes, +Z world up), rolled about z."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = np.cos(roll), np.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, forward], axis=1)
    pose[:3, 3] = position
    return pose


def camera_path(room: Room, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """float64 [N,4,4]: one smooth loop around the room at eye height, looking across the room, with jitter.

    The loop is an ellipse ``CAMERA_MARGIN`` inside the walls (tall furniture is kept out of that band); the
    camera looks at a point on the far side of the centre, panning ±25°, tilted down towards furniture height.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    a, b = room.width / 2 - CAMERA_MARGIN, room.depth / 2 - CAMERA_MARGIN
    start = rng.uniform(0, 2 * np.pi)
    direction = float(rng.choice([-1.0, 1.0]))
    phase = start + direction * 2 * np.pi * np.arange(n_frames) / n_frames
    eye = float(rng.uniform(1.4, 1.6))
    unit = np.linspace(0.0, 2 * np.pi, n_frames, endpoint=False)
    x = a * np.cos(phase) + _smooth_noise(rng, unit, 0.04)
    y = b * np.sin(phase) + _smooth_noise(rng, unit, 0.04)
    z = eye + _smooth_noise(rng, unit, 0.05)
    pan = np.deg2rad(25.0) * np.sin(2 * unit + rng.uniform(0, 2 * np.pi)) + _smooth_noise(rng, unit, 0.05)
    look_height = 0.75 + _smooth_noise(rng, unit, 0.15)
    roll = _smooth_noise(rng, unit, np.deg2rad(2.0))
    poses = np.empty((n_frames, 4, 4))
    for i in range(n_frames):
        position = np.array([x[i], y[i], z[i]])
        across = -position[:2] / max(np.linalg.norm(position[:2]), 1e-6)
        c, s = np.cos(pan[i]), np.sin(pan[i])
        view = np.array([c * across[0] - s * across[1], s * across[0] + c * across[1]])
        target_xy = position[:2] + view * (np.linalg.norm(position[:2]) * 1.3 + 0.5)
        poses[i] = look_at(position, np.array([target_xy[0], target_xy[1], look_height[i]]), roll[i])
    return poses


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera: 3x3 intrinsics ``k`` for an image of ``width`` x ``height`` pixels."""

    k: np.ndarray
    width: int
    height: int

    def scaled(self, scale: float) -> Camera:
        """The same camera with the image resized by about ``scale`` (whole pixels)."""
        width, height = max(1, round(self.width * scale)), max(1, round(self.height * scale))
        return Camera(scale_intrinsics(self.k, width / self.width), width, height)

    @cached_property
    def ray_directions(self) -> np.ndarray:
        """float32 [H*W,3] camera-frame directions K^-1 [u, v, 1], row-major pixels (z = 1: t_hit is the z-depth)."""
        u, v = np.meshgrid(np.arange(self.width, dtype=np.float64), np.arange(self.height, dtype=np.float64))
        rays = np.stack([(u - self.k[0, 2]) / self.k[0, 0], (v - self.k[1, 2]) / self.k[1, 1], np.ones_like(u)], -1)
        return rays.reshape(-1, 3).astype(np.float32)


class RaycastRenderer:
    """Renders depth and colour of one triangle mesh (aligned frame) from camera-to-world poses."""

    BATCH = 4  # frames per cast_rays call: fewer, larger calls keep Embree's threads busy

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray):
        faces = np.asarray(faces, dtype=np.int32)
        mesh = o3d.t.geometry.TriangleMesh()
        mesh.vertex.positions = o3d.core.Tensor(np.asarray(vertices, dtype=np.float32))
        mesh.triangle.indices = o3d.core.Tensor(faces)
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(mesh)
        # Shading is view-independent (directional lights; every surface's normal points to the open side), so it
        # is baked once into the colours at each triangle's three corners, blended per pixel by barycentrics.
        legacy = mesh.to_legacy()
        legacy.compute_vertex_normals()
        normals = np.asarray(legacy.vertex_normals)
        shade = _AMBIENT + np.clip(normals @ _LIGHTS.T, 0.0, None) @ _LIGHT_WEIGHTS
        shaded = np.asarray(colors, dtype=np.float32) * shade[:, None].astype(np.float32)
        self._corner_colors = np.concatenate([shaded[faces], np.zeros((1, 3, 3), np.float32)])  # last row: misses
        self._background = np.array(BACKGROUND_RGB, dtype=np.float32)
        self._rays = np.empty((0, 6), dtype=np.float32)

    def cast(self, views: Sequence[tuple[np.ndarray, Camera]]) -> list[dict[str, np.ndarray]]:
        """Ray-cast (pose, camera) views in one call. Per view: ``t_hit`` [H,W] (z-depth in metres, inf on a
        miss), ``primitive_ids`` [H,W] and ``primitive_uvs`` [H,W,2] (barycentric u, v of the hit triangle)."""
        total = sum(camera.width * camera.height for _, camera in views)
        if len(self._rays) < total:
            self._rays = np.empty((total, 6), dtype=np.float32)  # reused: a fresh 60 MB array per call is slow
        rays = self._rays[:total]
        start = 0
        for pose, camera in views:
            end = start + camera.width * camera.height
            rays[start:end, :3] = pose[:3, 3]
            np.matmul(camera.ray_directions, pose[:3, :3].T.astype(np.float32), out=rays[start:end, 3:])
            start = end
        result = self._scene.cast_rays(o3d.core.Tensor.from_numpy(rays))
        arrays = {name: result[name].numpy() for name in ("t_hit", "primitive_ids", "primitive_uvs")}
        out, start = [], 0
        for _, camera in views:
            end = start + camera.width * camera.height
            shape = (camera.height, camera.width)
            out.append({name: value[start:end].reshape(shape + value.shape[1:]) for name, value in arrays.items()})
            start = end
        return out

    @staticmethod
    def depth_image(hit: dict[str, np.ndarray]) -> np.ndarray:
        """uint16 [H,W] depth in millimetres from a cast; 0 where the ray hits nothing."""
        t_hit = hit["t_hit"]
        millimetres = np.where(np.isfinite(t_hit), np.round(t_hit * 1000.0), 0.0)
        return np.clip(millimetres, 0, 65535).astype(np.uint16)

    def color_image(self, hit: dict[str, np.ndarray]) -> np.ndarray:
        """uint8 RGB [H,W,3] from a cast: shaded vertex colours blended by barycentrics; background on a miss."""
        miss = ~np.isfinite(hit["t_hit"])
        ids = np.where(miss, len(self._corner_colors) - 1, hit["primitive_ids"])
        corners = self._corner_colors[ids]  # [H,W,3 corners,RGB]
        u, v = hit["primitive_uvs"][..., 0:1], hit["primitive_uvs"][..., 1:2]
        image = corners[..., 0, :] + u * (corners[..., 1, :] - corners[..., 0, :])
        image += v * (corners[..., 2, :] - corners[..., 0, :])
        image[miss] = self._background
        return np.clip(image + 0.5, 0, 255).astype(np.uint8)

    def render(
        self, poses: np.ndarray, color_camera: Camera, depth_camera: Camera, color_scale: float = 1.0
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(rgb uint8, depth uint16 mm) for each pose, lazily. Colour is cast at ``color_scale`` x its size and
        resized bilinearly to ``color_camera``'s size; depth is cast at ``depth_camera``'s own size."""
        internal = color_camera.scaled(color_scale) if color_scale != 1.0 else color_camera
        for start in range(0, len(poses), self.BATCH):
            batch = poses[start : start + self.BATCH]
            hits = self.cast([view for pose in batch for view in ((pose, internal), (pose, depth_camera))])
            for color_hit, depth_hit in zip(hits[0::2], hits[1::2]):
                rgb = self.color_image(color_hit)
                if internal is not color_camera:
                    rgb = cv2.resize(rgb, (color_camera.width, color_camera.height), interpolation=cv2.INTER_LINEAR)
                yield rgb, self.depth_image(depth_hit)
