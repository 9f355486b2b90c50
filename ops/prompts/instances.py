"""Object instances of a scene point cloud: per-point IDs, axis-aligned boxes and labels. Object ID k = row k.

Three sources:

``gt`` (``instances_from_gt``): ScanNet's annotation (aggregation + segs, resolved per mesh vertex). Objects whose
label is a room structure (``STRUCTURAL_LABELS``: wall, floor, ceiling) are left out, because a marker on a wall
or on the floor names no object a question asks about and would clutter every image. The remaining objects get
IDs 0..K-1 in ascending ScanNet ``objectId`` order; ``labels[k]["object_id"]`` keeps the ScanNet objectId so
annotations (ScanRefer ``object_id`` etc.) can be mapped to IDs.

``proposals`` (``ops.prompts.proposals.instances_from_proposals``): imported Mask3D-style proposals, file order
kept, first ``MAX_PROPOSALS`` (100).

``clusters`` (``instances_from_clusters``): class-agnostic geometric proposals for scans with neither. Floor,
ceiling and walls are removed by RANSAC plane fitting (Open3D ``segment_plane``, seeded), the rest is clustered
with DBSCAN (Open3D ``cluster_dbscan``), clusters below a minimum size are dropped, the largest
``max_instances`` are kept and IDs follow their box centres (sorted by x, then y, then z). Objects that touch
each other (pillows on a bed) fall into one cluster.

When the point cloud is not the mesh itself (``fusion``), pass the mesh vertices: each point then takes the ID of
its nearest mesh vertex if that vertex lies within ``max_transfer_distance`` metres, and boxes still come from
the mesh vertices, so they are the same whichever point cloud is used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ops.core.grouping import bounds, run_bounds, runs_by_key

os.environ.setdefault("EGL_PLATFORM", "surfaceless")  # open3d must not probe for a display
import open3d as o3d  # noqa: E402

STRUCTURAL_LABELS = frozenset({"wall", "walls", "floor", "floors", "ceiling", "ceilings"})
MAX_PROPOSALS = 100


@dataclass(frozen=True)
class Instances:
    """``instance`` int32 [P] (-1 = none), ``boxes`` float32 [K,6] (centre xyz, size xyz), one label dict per row.

    Label dicts: ``id`` (= row), ``label`` (category name or None), ``object_id`` (ScanNet objectId or None),
    ``score`` (proposal score or None), ``num_points`` (points of this cloud carrying the ID).
    """

    instance: np.ndarray
    boxes: np.ndarray
    labels: list[dict[str, Any]]

    @property
    def num_objects(self) -> int:
        return len(self.boxes)


def box_from_points(points: np.ndarray) -> np.ndarray:
    """Axis-aligned box float32 [6] (centre xyz, size xyz) of points [N,3], N >= 1."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise ValueError(f"expected a non-empty [N,3] array, got {points.shape}")
    low, high = bounds(points)
    return np.concatenate([(low + high) / 2.0, high - low]).astype(np.float32)


def boxes_by_row(points: np.ndarray, rows: np.ndarray, num_rows: int) -> np.ndarray:
    """``box_from_points`` of every group at once: float32 [num_rows,6] for the points [N,3] whose ``rows`` [N]
    equals each row (rows < 0 belong to none); a row without points keeps an all-zero box."""
    rows = np.asarray(rows, dtype=np.int64)
    runs = runs_by_key(np.where(rows < num_rows, rows, -1))
    low, high = run_bounds(np.asarray(points, dtype=np.float64)[runs.order], runs.starts)
    boxes = np.zeros((num_rows, 6), dtype=np.float32)
    boxes[runs.keys] = np.concatenate([(low + high) / 2.0, high - low], axis=1).astype(np.float32)
    return boxes


def box_iou_3d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of axis-aligned boxes given as centre+size [...,6]; broadcasts (e.g. ``a[:, None], b[None]``)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a_low, a_high = a[..., :3] - a[..., 3:] / 2, a[..., :3] + a[..., 3:] / 2
    b_low, b_high = b[..., :3] - b[..., 3:] / 2, b[..., :3] + b[..., 3:] / 2
    overlap = np.clip(np.minimum(a_high, b_high) - np.maximum(a_low, b_low), 0.0, None)
    inter = overlap.prod(-1)
    return inter / (a[..., 3:].prod(-1) + b[..., 3:].prod(-1) - inter + 1e-8)


def _transfer(coord: np.ndarray, mesh_vertices: np.ndarray, vertex_ids: np.ndarray, max_distance: float) -> np.ndarray:
    """Per-point IDs from the nearest mesh vertex (-1 beyond ``max_distance`` metres)."""
    distance, nearest = cKDTree(mesh_vertices).query(coord, k=1)
    ids = vertex_ids[nearest]
    ids[distance > max_distance] = -1
    return ids.astype(np.int32)


def point_ids(
    coord: np.ndarray, vertex_ids: np.ndarray, mesh_vertices: np.ndarray | None, max_distance: float
) -> np.ndarray:
    """int32 [P] IDs of ``coord``: ``vertex_ids`` as they are when ``coord`` is the mesh, else transferred from the
    nearest mesh vertex within ``max_distance`` metres."""
    if mesh_vertices is None:
        return vertex_ids.astype(np.int32)
    return _transfer(coord, mesh_vertices, vertex_ids, max_distance)


def checked_cloud(coord: np.ndarray, mesh_vertices: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``coord`` [P,3] as float64 and the points masks index: the mesh vertices [V,3] when given, else ``coord``."""
    coord = np.asarray(coord, dtype=np.float64)
    if coord.ndim != 2 or coord.shape[1] != 3:
        raise ValueError(f"coord must be [P,3], got {coord.shape}")
    source = coord if mesh_vertices is None else np.asarray(mesh_vertices, dtype=np.float64)
    if source.ndim != 2 or source.shape[1] != 3:
        raise ValueError(f"mesh_vertices must be [V,3], got {source.shape}")
    return coord, source


def instances_from_gt(
    coord: np.ndarray,
    vertex_object_ids: np.ndarray,
    object_labels: Mapping[int, str],
    mesh_vertices: np.ndarray | None = None,
    max_transfer_distance: float = 0.1,
    exclude_labels: frozenset[str] = STRUCTURAL_LABELS,
) -> Instances:
    """Instances from ScanNet annotations: ``vertex_object_ids`` [V] (-1 = none), ``object_labels`` {objectId: label}.

    ``coord`` is the mesh itself (V points) unless ``mesh_vertices`` [V,3] is given (then IDs are transferred).
    """
    coord, vertices = checked_cloud(coord, mesh_vertices)
    vertex_object_ids = np.asarray(vertex_object_ids, dtype=np.int64)
    if vertex_object_ids.shape != (len(vertices),):
        raise ValueError(f"vertex_object_ids has shape {vertex_object_ids.shape}, expected ({len(vertices)},)")
    present = set(np.unique(vertex_object_ids[vertex_object_ids >= 0]).tolist())
    kept = [
        oid
        for oid in sorted(object_labels)
        if oid in present and object_labels[oid].strip().lower() not in exclude_labels
    ]
    lookup = np.full(int(vertex_object_ids.max(initial=-1)) + 2, -1, dtype=np.int64)  # last slot maps -1 to -1
    for row, oid in enumerate(kept):
        lookup[oid] = row
    vertex_rows = lookup[vertex_object_ids]
    boxes = boxes_by_row(vertices, vertex_rows, len(kept))
    instance = point_ids(coord, vertex_rows, mesh_vertices, max_transfer_distance)
    counts = np.bincount(instance[instance >= 0], minlength=len(kept))
    labels = [
        {"id": row, "label": object_labels[oid], "object_id": int(oid), "score": None, "num_points": int(counts[row])}
        for row, oid in enumerate(kept)
    ]
    return Instances(instance, boxes, labels)


def _structure_mask(
    coord: np.ndarray,
    seed: int,
    plane_distance: float,
    min_plane_fraction: float,
    min_wall_length: float,
    max_planes: int,
    sample_voxel: float,
) -> np.ndarray:
    """Points on the floor, the ceiling or a wall, found by repeated RANSAC plane fits.

    RANSAC runs on one point per ``sample_voxel`` cube (the first in file order, so the sample is deterministic and
    evenly dense); each accepted plane then claims every point within ``plane_distance`` of it.
    """
    z_low, z_high = np.percentile(coord[:, 2], [1.0, 99.0])
    _, first = np.unique(np.floor(coord / sample_voxel).astype(np.int64), axis=0, return_index=True)
    sample = coord[np.sort(first)]
    min_plane_points = max(3, int(min_plane_fraction * len(sample)))
    structure = np.zeros(len(coord), dtype=bool)
    for _ in range(max_planes):
        if len(sample) < min_plane_points:
            break
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(sample))
        o3d.utility.random.seed(seed)
        plane, inliers = cloud.segment_plane(plane_distance, 3, 1000)
        if len(inliers) < min_plane_points:
            break
        normal = np.asarray(plane[:3]) / np.linalg.norm(plane[:3])
        offset = plane[3] / np.linalg.norm(plane[:3])
        points = sample[np.asarray(inliers)]
        if abs(normal[2]) > 0.97:  # horizontal: floor or ceiling if at the bottom or the top of the scene
            level = float(np.median(points[:, 2]))
            is_structure = level < z_low + 0.15 or level > z_high - 0.15
        elif abs(normal[2]) < 0.2:  # vertical: a wall if long and reaching the top of the scene
            along = np.array([-normal[1], normal[0]]) / max(np.linalg.norm(normal[:2]), 1e-9)
            span = points[:, 0] * along[0] + points[:, 1] * along[1]
            is_structure = span.max() - span.min() >= min_wall_length and points[:, 2].max() > z_high - 0.3
        else:
            is_structure = False
        if is_structure:
            distance = coord[:, 0] * normal[0] + coord[:, 1] * normal[1] + coord[:, 2] * normal[2] + offset
            structure |= np.abs(distance) <= plane_distance
        sample = np.delete(sample, inliers, axis=0)  # look for the next plane among the other points
    return structure


def instances_from_clusters(
    coord: np.ndarray,
    seed: int = 0,
    plane_distance: float = 0.03,
    min_plane_fraction: float = 0.02,
    min_wall_length: float = 1.5,
    max_planes: int = 10,
    eps: float = 0.08,
    min_points: int = 10,
    min_cluster_points: int = 50,
    max_instances: int = MAX_PROPOSALS,
    sample_voxel: float = 0.1,
) -> Instances:
    """Class-agnostic instances: remove floor/walls/ceiling by plane fitting, then DBSCAN-cluster the rest.

    Distances are metres. Deterministic for the same inputs and ``seed``.
    """
    coord, _ = checked_cloud(coord, None)
    if len(coord) == 0:
        return Instances(np.zeros(0, np.int32), np.zeros((0, 6), np.float32), [])
    structure = _structure_mask(
        coord, seed, plane_distance, min_plane_fraction, min_wall_length, max_planes, sample_voxel
    )
    rest = np.flatnonzero(~structure)
    cluster = np.full(len(coord), -1, dtype=np.int64)
    if len(rest):
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(coord[rest]))
        cluster[rest] = np.asarray(cloud.cluster_dbscan(eps, min_points))
    sizes = np.bincount(cluster[cluster >= 0])
    big = np.flatnonzero(sizes >= min_cluster_points)
    big = big[np.lexsort((big, -sizes[big]))][:max_instances]  # the largest clusters, ties by cluster label
    boxes = np.stack([box_from_points(coord[cluster == c]) for c in big]) if len(big) else np.zeros((0, 6), np.float32)
    centres = np.round(boxes[:, :3].astype(np.float64), 3)
    order = np.lexsort((centres[:, 2], centres[:, 1], centres[:, 0]))
    lookup = np.full(len(sizes) + 1, -1, dtype=np.int64)  # last slot maps noise (-1) to -1
    lookup[big[order]] = np.arange(len(order))
    instance = lookup[cluster].astype(np.int32)
    boxes = boxes[order].astype(np.float32)
    counts = np.bincount(instance[instance >= 0], minlength=len(order))
    labels = [
        {"id": row, "label": None, "object_id": None, "score": None, "num_points": int(counts[row])}
        for row in range(len(order))
    ]
    return Instances(instance, boxes, labels)
