"""Object instances of a scene point cloud: per-point IDs, axis-aligned boxes and labels. Object ID k = row k.

Three sources:

``gt`` (``instances_from_gt``): ScanNet's annotation (aggregation + segs, resolved per mesh vertex). Objects whose
label is a room structure (``STRUCTURAL_LABELS``: wall, floor, ceiling) are left out, because a marker on a wall
or on the floor names no object a question asks about and would clutter every image. The remaining objects get
IDs 0..K-1 in ascending ScanNet ``objectId`` order; ``labels[k]["object_id"]`` keeps the ScanNet objectId so
annotations (ScanRefer ``object_id`` etc.) can be mapped to IDs.

``proposals`` (``instances_from_proposals``): imported Mask3D-style proposals, e.g. Chat-Scene's files. The order
of the file is kept and only the first ``max_proposals`` (100) are used, so IDs match Chat-Scene's
``scannet_mask3d_*_attributes.pt`` ``locs`` rows, which the benchmarks' evaluation uses. Masks index the aligned
``_vh_clean_2.ply`` vertices. Accepted files, all read without unpickling arbitrary objects:

- ``.pt`` / ``.pth``, read with ``torch.load(weights_only=True)``:
  - a list with one dict per proposal, holding ``segments`` (vertex indices: Chat-Scene's
    ``mask3d_inst_seg/<scene>.pt``) or ``mask`` (a bool/0-1 vector over the vertices, or vertex indices), and
    optionally ``label`` and ``score``;
  - a dict with ``masks`` [K,V] (bool or 0/1) and optionally ``scores`` [K] and ``labels`` [K].
- ``.npz`` (``allow_pickle=False``): arrays ``masks`` [K,V] and optionally ``scores`` [K], ``labels`` [K].
- ``.npy`` (``allow_pickle=False``): the ``masks`` array [K,V] alone.
- ``.txt``: the ScanNet benchmark instance format Mask3D exports: one line per proposal,
  ``<mask file> <label id> <score>``, the mask file relative to the ``.txt``'s folder with one 0/1 per vertex.

Boxes are computed from each proposal's full mask (centre = (min+max)/2, size = max-min), exactly as Chat-Scene
does; an empty proposal keeps its ID with an all-zero box. Proposals overlap, but ``instance`` holds one ID per
point: a point shared by several proposals goes to the one with the highest score (the lowest ID when scores are
equal or absent).

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from scipy.spatial import cKDTree

from ops.core.errors import SceneInputError
from ops.core.grouping import bounds, run_bounds, runs_by_key

os.environ.setdefault("EGL_PLATFORM", "surfaceless")  # open3d must not probe for a display (STACK.md §7)
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


def _point_ids(
    coord: np.ndarray, vertex_ids: np.ndarray, mesh_vertices: np.ndarray | None, max_distance: float
) -> np.ndarray:
    if mesh_vertices is None:
        return vertex_ids.astype(np.int32)
    return _transfer(coord, mesh_vertices, vertex_ids, max_distance)


def _check_cloud(coord: np.ndarray, mesh_vertices: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
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
    coord, vertices = _check_cloud(coord, mesh_vertices)
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
    instance = _point_ids(coord, vertex_rows, mesh_vertices, max_transfer_distance)
    counts = np.bincount(instance[instance >= 0], minlength=len(kept))
    labels = [
        {"id": row, "label": object_labels[oid], "object_id": int(oid), "score": None, "num_points": int(counts[row])}
        for row, oid in enumerate(kept)
    ]
    return Instances(instance, boxes, labels)


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _mask_indices(mask: Any, num_vertices: int, fail: Callable[[str], NoReturn]) -> np.ndarray:
    """Vertex indices of one proposal given as a bool/0-1 vector over the vertices or as indices."""
    array = _as_numpy(mask).reshape(-1)
    if array.dtype == np.bool_:
        if len(array) != num_vertices:
            fail(f"a mask has {len(array)} entries but the point cloud has {num_vertices} points")
        return np.flatnonzero(array)
    if len(array) and not np.issubdtype(array.dtype, np.integer):
        fail(f"a mask has dtype {array.dtype}; expected bool, 0/1 or integer vertex indices")
    array = array.astype(np.int64)
    if len(array) == num_vertices and num_vertices > 2 and np.isin(array, (0, 1)).all():
        return np.flatnonzero(array)
    if len(array) and (array.min() < 0 or array.max() >= num_vertices):
        fail(f"a mask indexes vertex {int(array.max())} of a {num_vertices}-point cloud")
    return np.unique(array)


def _dense_masks(masks: Any, num_vertices: int, limit: int, fail: Callable[[str], NoReturn]) -> list[np.ndarray]:
    """Vertex indices of the first ``limit`` rows of a [K,V] bool/0-1 mask array."""
    array = _as_numpy(masks)
    if array.ndim != 2 or array.shape[1] != num_vertices:
        fail(f"masks must be [K,{num_vertices}], got {array.shape}")
    if array.dtype != np.bool_ and not (np.issubdtype(array.dtype, np.integer) and np.isin(array, (0, 1)).all()):
        fail(f"masks must be bool or 0/1, got dtype {array.dtype}")
    return [np.flatnonzero(row) for row in array[:limit]]


def _read_proposals(path: Path, num_vertices: int, max_proposals: int, fail: Callable[[str], NoReturn]):
    """``(indices per proposal, labels, scores)`` from one proposal file (formats in the module docstring)."""
    suffix = path.suffix.lower()
    labels: list[Any] | None = None
    scores: Any = None
    if suffix in (".pt", ".pth"):
        import torch  # only this format needs it (1.5 s import)

        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
            fail(f"not a tensors-only torch file ({type(error).__name__}: {str(error).splitlines()[0]})")
        if isinstance(data, Mapping) and "masks" in data:
            masks = _dense_masks(data["masks"], num_vertices, max_proposals, fail)
            labels, scores = data.get("labels"), data.get("scores")
        elif isinstance(data, Sequence) and all(isinstance(p, Mapping) for p in data):
            masks, labels, scores = [], [], []
            for proposal in list(data)[:max_proposals]:
                if "segments" in proposal:
                    masks.append(_mask_indices(proposal["segments"], num_vertices, fail))
                elif "mask" in proposal:
                    masks.append(_mask_indices(proposal["mask"], num_vertices, fail))
                else:
                    fail("a proposal dict has neither 'segments' nor 'mask'")
                labels.append(proposal.get("label"))
                scores.append(proposal.get("score"))
            if all(s is None for s in scores):
                scores = None
        else:
            fail("expected a list of proposal dicts or a dict with 'masks'")
    elif suffix in (".npz", ".npy"):
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            fail(f"cannot read without pickle ({error})")
        if suffix == ".npy":
            masks = _dense_masks(data, num_vertices, max_proposals, fail)
        else:
            with data:
                if "masks" not in data.files:
                    fail(f"no 'masks' array (arrays: {sorted(data.files)})")
                masks = _dense_masks(data["masks"], num_vertices, max_proposals, fail)
                labels = data["labels"].tolist() if "labels" in data.files else None
                scores = data["scores"] if "scores" in data.files else None
    elif suffix == ".txt":
        masks, labels, scores = [], [], []
        for line in path.read_text().splitlines()[:max_proposals]:
            fields = line.split()
            if len(fields) != 3:
                fail(f"expected '<mask file> <label id> <score>' per line, got {line!r}")
            mask_path = (path.parent / fields[0]).resolve()
            if not mask_path.is_relative_to(path.parent.resolve()):
                fail(f"mask file {fields[0]!r} lies outside {path.parent}")
            try:
                values = np.array(mask_path.read_bytes().split(), dtype=np.int64)
            except (OSError, ValueError) as error:
                fail(f"cannot read mask file {mask_path}: {error}")
            if len(values) != num_vertices or not np.isin(values, (0, 1)).all():
                fail(f"mask file {mask_path} must hold {num_vertices} lines of 0 or 1 (one per point)")
            masks.append(np.flatnonzero(values))
            labels.append(fields[1])
            scores.append(float(fields[2]))
    else:
        fail(f"unsupported proposal file type {suffix!r} (use .pt, .pth, .npz, .npy or .txt)")
    k = len(masks)
    labels = None if labels is None else [None if x is None else str(_as_numpy(x).item()) for x in list(labels)[:k]]
    if labels is not None and len(labels) != k:
        fail(f"{len(labels)} labels for {k} proposals")
    if scores is not None:
        scores = np.asarray([np.nan if s is None else float(_as_numpy(s)) for s in list(scores)[:k]])
        if len(scores) != k:
            fail(f"{len(scores)} scores for {k} proposals")
    return masks, labels, scores


def instances_from_proposals(
    path: str | Path,
    coord: np.ndarray,
    max_proposals: int = MAX_PROPOSALS,
    mesh_vertices: np.ndarray | None = None,
    max_transfer_distance: float = 0.1,
    scene_id: str | None = None,
) -> Instances:
    """Instances from a Mask3D-style proposal file (formats in the module docstring); file order, first 100.

    The masks index ``coord`` unless ``mesh_vertices`` is given (then they index the mesh and IDs are transferred).
    Bad files raise ``SceneInputError`` naming the scene and the file.
    """
    path = Path(path)
    coord, vertices = _check_cloud(coord, mesh_vertices)

    def fail(reason: str) -> NoReturn:
        raise SceneInputError(scene_id, path, reason)

    if not path.is_file():
        fail("proposal file not found")
    masks, labels, scores = _read_proposals(path, len(vertices), max_proposals, fail)
    k = len(masks)
    boxes = np.zeros((k, 6), dtype=np.float32)
    for row, indices in enumerate(masks):
        if len(indices):
            boxes[row] = box_from_points(vertices[indices])
    priority = np.arange(k) if scores is None else np.lexsort((np.arange(k), -np.nan_to_num(scores, nan=-np.inf)))
    vertex_rows = np.full(len(vertices), -1, dtype=np.int64)
    for row in priority.tolist():
        indices = masks[row]
        free = indices[vertex_rows[indices] < 0]
        vertex_rows[free] = row
    instance = _point_ids(coord, vertex_rows, mesh_vertices, max_transfer_distance)
    counts = np.bincount(instance[instance >= 0], minlength=k)
    rows = [
        {
            "id": row,
            "label": None if labels is None else labels[row],
            "object_id": None,
            "score": None if scores is None or np.isnan(scores[row]) else round(float(scores[row]), 6),
            "num_points": int(counts[row]),
        }
        for row in range(k)
    ]
    return Instances(instance, boxes, rows)


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
    coord, _ = _check_cloud(coord, None)
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
