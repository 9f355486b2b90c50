"""Video frames for GPT4Scene: uniform sampling, projection, visibility-tested object markers, marked frames and
the zero-shot 2x4 composite.

Cameras follow docs/ARCHITECTURE.md: poses are 4x4 camera-to-world in the aligned frame, OpenCV camera axes (x right,
y down, z forward), intrinsics are 3x3 in pixels of their own image with pixel centres at integer coordinates (pixel
``(col, row)`` covers ``[col-0.5, col+0.5)``). Colour and depth share the frame's pose (ScanNet registers them).

A frame marker is drawn for an object when at least ``min_visible_points`` of its points are visible: in front of
the camera, inside the depth image and the saved image, and not behind the measured surface
(``z <= depth + depth_tolerance``; depth 0 means unknown and makes the point not visible). The marker sits at the
centroid of the visible points' projections into the saved (resized) image. An object outside the frustum, or
hidden behind a wall, therefore gets no marker in that frame.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ops.core.grouping import run_bounds, runs_by_key
from ops.prompts.markers import draw_markers, marker_size_for

IMAGE_RESOLUTION = 512  # long side of the saved frames, as in GPT4Scene's training (images capped at 512 px)
MIN_VISIBLE_POINTS = 10
DEPTH_TOLERANCE = 0.1  # metres
COMPOSITE_BACKGROUND = (255, 255, 255)


def sample_frame_indices(valid_indices: Sequence[int] | np.ndarray, n: int) -> list[int]:
    """``n`` frames spread uniformly over the valid ones: ``s_i = valid[floor(i*N/n)]``, i = 0..n-1.

    ``valid_indices`` are the indices of the frames with a finite pose (e.g. ``np.flatnonzero(valid_frame_mask)``);
    with ``N <= n`` valid frames all of them are returned.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    valid = np.unique(np.asarray(valid_indices, dtype=np.int64))
    total = len(valid)
    if total <= n:
        return valid.tolist()
    return [int(valid[(i * total) // n]) for i in range(n)]


def scale_intrinsics(k: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
    """K of the same camera after resizing the image by ``scale_x``, ``scale_y`` (pixel-centre convention)."""
    out = np.array(k, dtype=np.float64, copy=True)
    out[0, 0] *= scale_x
    out[0, 1] *= scale_x
    out[1, 1] *= scale_y
    out[0, 2] = (k[0, 2] + 0.5) * scale_x - 0.5
    out[1, 2] = (k[1, 2] + 0.5) * scale_y - 0.5
    return out


def fit_long_side(width: int, height: int, long_side: int) -> tuple[int, int]:
    """``(width, height)`` scaled so the long side is at most ``long_side`` px (never enlarged), truncated to whole
    pixels as GPT4Scene's repo does."""
    scale = min(1.0, long_side / max(width, height))
    return max(1, int(width * scale)), max(1, int(height * scale))


def resized_geometry(
    width: int, height: int, k: np.ndarray, image_resolution: int = IMAGE_RESOLUTION
) -> tuple[tuple[int, int], np.ndarray]:
    """``((width, height), K)`` of a ``width`` x ``height`` frame with intrinsics ``k`` once ``resize_frame`` has
    shrunk it so its long side is at most ``image_resolution``."""
    size = fit_long_side(width, height, image_resolution)
    if size == (width, height):
        return size, np.array(k, dtype=np.float64)
    return size, scale_intrinsics(k, size[0] / width, size[1] / height)


def resize_frame(
    rgb: np.ndarray, k: np.ndarray, image_resolution: int = IMAGE_RESOLUTION
) -> tuple[np.ndarray, np.ndarray]:
    """``(image, K)``: the frame shrunk so its long side is at most ``image_resolution`` (``downscale``), and its
    K. A frame that is small enough comes back as it is (not copied, when C-contiguous)."""
    height, width = rgb.shape[:2]
    size, k_new = resized_geometry(width, height, k, image_resolution)
    if size == (width, height):
        return np.ascontiguousarray(rgb), k_new
    return downscale(rgb, size), k_new


def downscale(rgb: np.ndarray, size: tuple[int, int], keep_alignment: bool = True) -> np.ndarray:
    """The image shrunk to ``size`` (width, height), each side at most the image's.

    While the image is over twice the target it is halved by averaging 2x2 blocks (OpenCV's fast path for an
    integer area filter); the last step, by a factor between 1/2 and 1, is bilinear. A general area filter gives
    nearly the same pixels at three times the cost. With ``keep_alignment`` every step keeps pixel centres aligned
    (an odd side is halved by the general area filter), so the pixels map as in a single resize and the K of one
    resize holds; without it (previews) an odd last row or column is dropped instead, ~8x cheaper.
    """
    image = rgb
    while image.shape[1] >= 2 * size[0] and image.shape[0] >= 2 * size[1]:
        height, width = image.shape[0] // 2, image.shape[1] // 2
        if not keep_alignment:
            image = image[: 2 * height, : 2 * width]
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if image.shape[1::-1] != tuple(size):
        image = cv2.resize(image, tuple(size), interpolation=cv2.INTER_LINEAR)
    return image


def _to_camera(columns: np.ndarray, pose_c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera coordinates ``R^T (X - t)`` of world points given as columns [3,P] (x, y, z rows), as three arrays.

    Computed row by row rather than as a matrix product: a [P,3] @ [3,3] product goes to a multithreaded BLAS,
    which is many times slower on a machine whose cores are busy.
    """
    rotation, translation = pose_c2w[:3, :3], pose_c2w[:3, 3]
    dx, dy, dz = (np.asarray(columns[i], dtype=np.float64) - translation[i] for i in range(3))
    x, y, z = (dx * rotation[0, j] + dy * rotation[1, j] + dz * rotation[2, j] for j in range(3))
    return x, y, z


def project_points(
    coord: np.ndarray, pose_c2w: np.ndarray, k: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(uv [P,2], z [P], inside [P])``: pixel coordinates, camera depth (metres) and in-image-and-in-front mask."""
    x, y, z = _to_camera(np.asarray(coord).T, np.asarray(pose_c2w, dtype=np.float64))
    in_front = z > 1e-6
    safe_z = np.where(in_front, z, 1.0)
    k = np.asarray(k, dtype=np.float64)
    u = k[0, 0] * x / safe_z + k[0, 1] * y / safe_z + k[0, 2]
    v = k[1, 1] * y / safe_z + k[1, 2]
    inside = in_front & (u >= -0.5) & (u < width - 0.5) & (v >= -0.5) & (v < height - 0.5)
    return np.stack([u, v], axis=1), z, inside


class ObjectPoints:
    """A scene's labelled points grouped by object, prepared once for the per-frame visibility tests.

    ``coord`` float [P,3] world metres, ``instance`` int [P] (-1 = no object). Points are kept in float64, sorted
    by object ID (stably, so each object's points keep their order) with one contiguous run per object, and each
    object's axis-aligned bounding box gives 8 corners for culling whole objects against a camera's frustum.
    """

    def __init__(self, coord: np.ndarray, instance: np.ndarray):
        runs = runs_by_key(instance)
        self.points = np.ascontiguousarray(np.asarray(coord, dtype=np.float64)[runs.order])  # [L,3]
        self.ids = np.asarray(instance).astype(np.int64)[runs.order]
        self.object_ids, self.starts, self.ends = runs.keys, runs.starts, runs.ends
        lows, highs = run_bounds(self.points, self.starts)
        pick = np.array([[(corner >> axis) & 1 for axis in range(3)] for corner in range(8)], dtype=bool)
        self.corners = np.where(pick[None], highs[:, None, :], lows[:, None, :])  # [K,8,3]
        self._every: dict[int, ObjectPoints] = {}

    def every(self, stride: int) -> ObjectPoints:
        """The same objects and boxes with every ``stride``-th point of each object (its first point included),
        made once per stride: a sample for a quick first visibility test."""
        if stride not in self._every:
            offsets = np.arange(len(self.ids)) - np.repeat(self.starts, self.ends - self.starts)
            keep = np.flatnonzero(offsets % stride == 0)
            sample = copy.copy(self)
            sample.points, sample.ids = self.points[keep], self.ids[keep]
            sample.starts, sample.ends = np.searchsorted(keep, self.starts), np.searchsorted(keep, self.ends)
            sample._every = {}
            self._every[stride] = sample
        return self._every[stride]

    def subset(self, objects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(points [n,3], ids [n])`` of the points of ``objects`` (ascending indices into ``object_ids``)."""
        if len(objects) == len(self.object_ids):
            return self.points, self.ids
        # neighbouring objects' runs are adjacent: join them, so each copy is one slice
        breaks = np.flatnonzero(np.diff(objects) != 1) + 1
        spans = [(self.starts[run[0]], self.ends[run[-1]]) for run in np.split(objects, breaks)]
        points = np.concatenate([self.points[a:b] for a, b in spans])
        return points, np.concatenate([self.ids[a:b] for a, b in spans])

    def in_view(self, pose_c2w: np.ndarray, k: np.ndarray, width: int, height: int) -> np.ndarray:
        """Indices (into ``object_ids``) of the objects whose box may reach the image; the others cannot be seen.

        Each frustum side is a plane through the camera centre, e.g. ``u < -0.5`` is ``fx*x + s*y + (cx+0.5)*z < 0``
        for ``z > 0``: linear in the camera coordinates, so when all 8 corners of a box lie beyond one side, every
        point of the box does. Sides are pushed out by ``_CULL_MARGIN`` px so rounding never culls a visible point.
        """
        x, y, z = (c.reshape(-1, 8) for c in _to_camera(self.corners.reshape(-1, 3).T, pose_c2w))
        m = _CULL_MARGIN
        beyond = (
            (z <= 1e-6),
            (k[0, 0] * x + k[0, 1] * y + (k[0, 2] + 0.5 + m) * z < 0),
            (k[0, 0] * x + k[0, 1] * y + (k[0, 2] - width + 0.5 - m) * z > 0),
            (k[1, 1] * y + (k[1, 2] + 0.5 + m) * z < 0),
            (k[1, 1] * y + (k[1, 2] - height + 0.5 - m) * z > 0),
        )
        culled = np.zeros(len(self.object_ids), dtype=bool)
        for side in beyond:
            culled |= side.all(axis=1)
        return np.flatnonzero(~culled)


_CULL_MARGIN = 2.0  # px


@dataclass(frozen=True)
class FrameCamera:
    """What the visibility rules need of one frame: pose, depth map and the saved image's size and K.

    ``pose`` camera-to-world 4x4; ``depth`` uint16 [H,W] in ``1/depth_shift`` metres with intrinsics ``k_depth``;
    ``image_size`` (width, height) and ``k_image`` describe the saved image the markers are for.
    """

    pose: np.ndarray
    k_depth: np.ndarray
    depth: np.ndarray
    depth_shift: float
    image_size: tuple[int, int]
    k_image: np.ndarray
    _world_to_depth: np.ndarray = field(init=False, repr=False, compare=False)
    _depth_to_image: np.ndarray = field(init=False, repr=False, compare=False)
    _depth_box: tuple[tuple[float, ...], tuple[float, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("pose", "k_depth", "k_image"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        rotation, translation = self.pose[:3, :3], self.pose[:3, 3]
        # homogeneous world point -> (z*u, z*v, 1, z) with (u, v) depth-image pixels and z the camera depth (m), so
        # OpenCV's perspective divide gives (u, v, 1/z)
        world_to_depth = np.zeros((4, 4))
        with np.errstate(invalid="ignore"):  # an invalid (non-finite) pose projects to NaN, which nothing is inside
            world_to_camera = np.column_stack([rotation.T, -rotation.T @ translation])  # [3,4]
            world_to_depth[:2] = (self.k_depth @ world_to_camera)[:2]
        world_to_depth[2, 3] = 1.0
        world_to_depth[3] = world_to_camera[2]
        object.__setattr__(self, "_world_to_depth", world_to_depth)
        # both images share the camera, so saved-image pixels are an affine map of depth-image pixels
        object.__setattr__(self, "_depth_to_image", (self.k_image @ np.linalg.inv(self.k_depth))[:2])
        # inside the depth image (u in [-0.5, W-0.5), v likewise) and in front (z > 1e-6, i.e. 0 < 1/z < 1e6),
        # as inclusive bounds for cv2.inRange
        height, width = self.depth.shape
        lower = (-0.5, -0.5, math.nextafter(0.0, 1.0))
        upper = tuple(math.nextafter(bound, 0.0) for bound in (width - 0.5, height - 0.5, 1e6))
        object.__setattr__(self, "_depth_box", (lower, upper))

    def objects_in_view(self, objects: ObjectPoints) -> np.ndarray:
        """``ObjectPoints.in_view`` for the saved image; none at all for a non-finite (invalid) pose."""
        if not np.isfinite(self.pose).all():
            return np.zeros(0, dtype=np.int64)
        return objects.in_view(self.pose, self.k_image, *self.image_size)

    def seen_points(self, points: np.ndarray, ids: np.ndarray, depth_tolerance: float):
        """``(ids, u, v)`` of the points (float64 [n,3] world metres, and their ids) visible in this frame,
        ``u, v`` in pixels of the saved image (rules in the module docstring).

        OpenCV projects every point into the depth image in one pass (``perspectiveTransform``) and keeps those in
        the image and in front (``inRange``); numpy then does the depth test and the saved-image bounds on them.
        """
        projected = cv2.perspectiveTransform(np.ascontiguousarray(points).reshape(-1, 1, 3), self._world_to_depth)
        inside = np.flatnonzero(cv2.inRange(projected, *self._depth_box).view(bool))
        kept = np.take(projected.reshape(-1, 3), inside, axis=0)
        depth_u, depth_v, inverse_z = kept[:, 0], kept[:, 1], kept[:, 2]
        height, width = self.depth.shape
        # u + 0.5 >= 0 here, so truncation is the floor: the pixel whose square holds (u, v)
        pixel = (depth_v + 0.5).astype(np.int64) * width + (depth_u + 0.5).astype(np.int64)
        measured = self.depth.reshape(-1)[pixel].astype(np.float64) / self.depth_shift
        seen = np.flatnonzero((measured > 0) & (1.0 / inverse_z <= measured + depth_tolerance))

        depth_u, depth_v = depth_u[seen], depth_v[seen]
        affine, (image_width, image_height) = self._depth_to_image, self.image_size
        u = affine[0, 0] * depth_u + affine[0, 1] * depth_v + affine[0, 2]
        v = affine[1, 0] * depth_u + affine[1, 1] * depth_v + affine[1, 2]
        in_image = (u >= -0.5) & (u < image_width - 0.5) & (v >= -0.5) & (v < image_height - 0.5)
        return ids[inside[seen[in_image]]], u[in_image], v[in_image]


def visible_markers(
    objects: ObjectPoints,
    camera: FrameCamera,
    min_visible_points: int = MIN_VISIBLE_POINTS,
    depth_tolerance: float = DEPTH_TOLERANCE,
) -> dict[int, dict[str, object]]:
    """``{id: {"uv": [u, v], "visible_points": n}}`` for the objects visible in one frame (rules in module docs).

    Objects whose box lies outside the saved image's frustum are skipped before their points are projected.
    """
    kept = camera.objects_in_view(objects)
    if len(kept) == 0:
        return {}
    seen_ids, u, v = camera.seen_points(*objects.subset(kept), depth_tolerance)
    if len(seen_ids) == 0:
        return {}
    counts = np.bincount(seen_ids)
    sum_u = np.bincount(seen_ids, weights=u)
    sum_v = np.bincount(seen_ids, weights=v)
    markers: dict[int, dict[str, object]] = {}
    for object_id in np.flatnonzero(counts >= max(1, min_visible_points)).tolist():
        n = int(counts[object_id])
        markers[object_id] = {
            "uv": [round(float(sum_u[object_id] / n), 2), round(float(sum_v[object_id] / n), 2)],
            "visible_points": n,
        }
    return markers


def visible_object_ids(
    objects: ObjectPoints,
    camera: FrameCamera,
    min_visible_points: int = MIN_VISIBLE_POINTS,
    depth_tolerance: float = DEPTH_TOLERANCE,
    stride: int = 8,
) -> set[int]:
    """The IDs of ``visible_markers`` (no positions), for checking them with less work: every ``stride``-th point
    of each object in view is tested first, and an object already shown visible by that sample needs no more;
    only the others have all their points tested."""
    kept = camera.objects_in_view(objects)
    if len(kept) == 0:
        return set()
    threshold = max(1, min_visible_points)
    sample_ids, _, _ = camera.seen_points(*objects.every(stride).subset(kept), depth_tolerance)
    visible = set(np.flatnonzero(np.bincount(sample_ids) >= threshold).tolist()) if len(sample_ids) else set()
    rest = kept[~np.isin(objects.object_ids[kept], list(visible))]
    if len(rest):
        seen_ids, _, _ = camera.seen_points(*objects.subset(rest), depth_tolerance)
        if len(seen_ids):
            visible |= set(np.flatnonzero(np.bincount(seen_ids) >= threshold).tolist())
    return visible


def mark_frame(
    rgb: np.ndarray, markers: Mapping[int, Mapping[str, object]], size: int | None = None, in_place: bool = False
) -> np.ndarray:
    """The frame with the ``visible_markers`` output drawn (on a copy unless ``in_place``); ``size`` defaults to
    40 px per 1024 px of long side."""
    if size is None:
        size = marker_size_for(max(rgb.shape[:2]))
    return draw_markers(rgb, {object_id: marker["uv"] for object_id, marker in markers.items()}, size, in_place)


def composite_grid(images: Sequence[np.ndarray], rows: int = 2, cols: int = 4, gap: int = 4) -> np.ndarray:
    """One RGB image of ``images`` in row-major ``rows`` x ``cols`` cells (zero-shot input), ``gap`` px of white.

    Every cell has the first image's size (others are resized to it); empty cells stay white.
    """
    if not images:
        raise ValueError("no images to compose")
    if len(images) > rows * cols:
        raise ValueError(f"{len(images)} images do not fit a {rows}x{cols} grid")
    cell_height, cell_width = images[0].shape[:2]
    canvas = np.empty((rows * cell_height + (rows - 1) * gap, cols * cell_width + (cols - 1) * gap, 3), np.uint8)
    # OpenCV's fill: numpy broadcasting a 3-byte colour over the canvas takes ~50x as long
    cv2.rectangle(canvas, (0, 0), (canvas.shape[1] - 1, canvas.shape[0] - 1), COMPOSITE_BACKGROUND, cv2.FILLED)
    for n, image in enumerate(images):
        if image.shape[:2] != (cell_height, cell_width):
            image = cv2.resize(image, (cell_width, cell_height), interpolation=cv2.INTER_AREA)
        top = (n // cols) * (cell_height + gap)
        left = (n % cols) * (cell_width + gap)
        canvas[top : top + cell_height, left : left + cell_width] = image
    return canvas
