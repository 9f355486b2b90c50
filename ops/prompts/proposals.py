"""Imported instance proposals: ``instances_from_proposals`` reads a Mask3D-style proposal file into ``Instances``.

The proposals come from Mask3D-style files, e.g. Chat-Scene's. The order of the file is kept and only the first
``max_proposals`` (100) are used, so IDs match Chat-Scene's ``scannet_mask3d_*_attributes.pt`` ``locs`` rows, which
the benchmarks' evaluation uses. Masks index the aligned ``_vh_clean_2.ply`` vertices. Accepted files, all read
without unpickling arbitrary objects:

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

When the point cloud is not the mesh itself (``fusion``), pass the mesh vertices: the masks index the mesh, each
point takes the ID of its nearest mesh vertex within ``max_transfer_distance`` metres, and boxes come from the mesh.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ops.core.errors import SceneInputError
from ops.core.textfile import read_utf8_text, regular_file
from ops.prompts.instances import MAX_PROPOSALS, Instances, box_from_points, checked_cloud, point_ids


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
        try:
            text = read_utf8_text(path, None, "proposal file")
        except SceneInputError as exc:  # named again with the scene
            fail(exc.reason)
        for line in text.splitlines()[:max_proposals]:
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
            try:
                scores.append(float(fields[2]))
            except ValueError:
                fail(f"score {fields[2]!r} is not a number (line {line!r})")
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
    coord, vertices = checked_cloud(coord, mesh_vertices)

    def fail(reason: str) -> NoReturn:
        raise SceneInputError(scene_id, path, reason)

    if not path.exists():
        fail("proposal file not found")
    regular_file(path, scene_id, "proposal file")
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
    instance = point_ids(coord, vertex_rows, mesh_vertices, max_transfer_distance)
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
