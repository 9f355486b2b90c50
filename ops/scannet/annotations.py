"""ScanNet's annotation and metadata files: over-segmentation (``segs.json``), aggregation, ``<scene>.txt`` and the
label map (``scannetv2-labels.combined.tsv``)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ops.core.errors import SceneInputError
from ops.core.textfile import read_utf8_text

MAX_OBJECT_ID = 2**31 - 1  # objectIds are stored as int32 per vertex
MAX_SEGMENT_ID = 2**63 - 1  # segIndices are int64


@dataclass(frozen=True)
class SegGroup:
    """One aggregation object: 0-based ``object_id`` (ScanRefer's ``object_id``), raw ``label``, its segments."""

    object_id: int
    label: str
    segments: tuple[int, ...]


@dataclass
class SceneMeta:
    """``<scene>.txt``: axis alignment (4x4 float64), raw key/value fields, and the cameras when present.

    Sizes are ``(width, height)`` pixels; intrinsics are 3x3 from ``fx_*``, ``fy_*``, ``mx_*`` (cx), ``my_*`` (cy).
    """

    axis_alignment: np.ndarray
    fields: dict[str, str]
    color_size: tuple[int, int] | None = None
    depth_size: tuple[int, int] | None = None
    color_intrinsics: np.ndarray | None = None
    depth_intrinsics: np.ndarray | None = None


@dataclass(frozen=True)
class LabelRow:
    """One row of ``scannetv2-labels.combined.tsv``."""

    id: int
    raw_category: str
    category: str
    nyu40id: int
    nyu40class: str


def _read_json(path: Path, scene_id: str | None, what: str) -> Any:
    text = read_utf8_text(path, scene_id, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SceneInputError(scene_id, path, f"malformed {what} JSON: {exc.msg} at line {exc.lineno}") from exc
    except RecursionError as exc:
        raise SceneInputError(scene_id, path, f"malformed {what} JSON: nested too deeply") from exc


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_segs(path: str | Path, scene_id: str | None = None) -> np.ndarray:
    """Per-vertex segment ids (int64 [V]) of ``*_vh_clean_2.0.010000.segs.json``, in mesh vertex order."""
    path = Path(path)
    data = _read_json(path, scene_id, "segmentation")
    indices = data.get("segIndices") if isinstance(data, dict) else None
    # Exact types, bool excluded (json true is an int subclass); map(type) runs in C over ~150k entries.
    if not isinstance(indices, list) or not indices or set(map(type, indices)) != {int}:
        raise SceneInputError(scene_id, path, "segmentation needs a non-empty 'segIndices' list of integers")
    try:
        return np.asarray(indices, dtype=np.int64)
    except OverflowError as exc:
        raise SceneInputError(scene_id, path, "'segIndices' holds integers beyond 64 bits") from exc


def read_aggregation(path: str | Path, scene_id: str | None = None) -> list[SegGroup]:
    """The ``segGroups`` of ``<scene>.aggregation.json``, sorted by ``objectId`` (0-based, unique)."""
    path = Path(path)
    data = _read_json(path, scene_id, "aggregation")
    groups = data.get("segGroups") if isinstance(data, dict) else None
    if not isinstance(groups, list):
        raise SceneInputError(scene_id, path, "aggregation has no 'segGroups' list")
    out = []
    for row, group in enumerate(groups):
        object_id = group.get("objectId") if isinstance(group, dict) else None
        label = group.get("label") if isinstance(group, dict) else None
        segments = group.get("segments") if isinstance(group, dict) else None
        if not (
            _is_int(object_id)
            and 0 <= object_id <= MAX_OBJECT_ID
            and isinstance(label, str)
            and isinstance(segments, list)
            and all(_is_int(s) and 0 <= s <= MAX_SEGMENT_ID for s in segments)
        ):
            ranges = f"an objectId in 0..{MAX_OBJECT_ID}, a label and segments in 0..{MAX_SEGMENT_ID}"
            raise SceneInputError(scene_id, path, f"segGroups[{row}] needs {ranges}")
        out.append(SegGroup(object_id, label, tuple(segments)))
    ids = sorted(group.object_id for group in out)
    duplicates = sorted({i for i, j in zip(ids, ids[1:]) if i == j})
    if duplicates:
        raise SceneInputError(scene_id, path, f"objectId {duplicates[0]} appears in more than one segGroup")
    return sorted(out, key=lambda group: group.object_id)


def vertex_object_ids(seg_indices: np.ndarray, seg_groups: Iterable[SegGroup]) -> np.ndarray:
    """Object id of every vertex (int32 [V], -1 where no group claims the vertex's segment).

    Raises ValueError when one segment belongs to two objects.
    """
    seg_indices = np.asarray(seg_indices, dtype=np.int64)
    seg_to_object: dict[int, int] = {}
    for group in seg_groups:
        for segment in group.segments:
            owner = seg_to_object.setdefault(segment, group.object_id)
            if owner != group.object_id:
                raise ValueError(f"segment {segment} belongs to objects {owner} and {group.object_id}")
    if not seg_to_object:
        return np.full(len(seg_indices), -1, np.int32)
    keys = np.fromiter(seg_to_object.keys(), np.int64, len(seg_to_object))
    values = np.fromiter(seg_to_object.values(), np.int32, len(seg_to_object))
    order = np.argsort(keys)
    keys, values = keys[order], values[order]
    position = np.clip(np.searchsorted(keys, seg_indices), 0, len(keys) - 1)
    return np.where(keys[position] == seg_indices, values[position], -1).astype(np.int32)


def read_scene_meta(path: str | Path, scene_id: str | None = None) -> SceneMeta:
    """Parse ``<scene>.txt`` (``key = value`` lines)."""
    path = Path(path)

    def fail(reason: str) -> SceneInputError:
        return SceneInputError(scene_id, path, reason)

    text = read_utf8_text(path, scene_id, "scene metadata")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key.strip()] = value.strip()

    def numbers(key: str, count: int) -> np.ndarray | None:
        if key not in fields:
            return None
        try:
            values = np.array([float(v) for v in fields[key].split()], dtype=np.float64)
        except ValueError as exc:
            raise fail(f"{key} is not numeric: {fields[key][:80]!r}") from exc
        if values.size != count or not np.isfinite(values).all():
            raise fail(f"{key} must hold {count} finite numbers, has {values.size}")
        return values

    alignment = numbers("axisAlignment", 16)
    meta = SceneMeta(np.eye(4) if alignment is None else alignment.reshape(4, 4), fields)
    for camera in ("color", "depth"):
        width, height = numbers(f"{camera}Width", 1), numbers(f"{camera}Height", 1)
        if width is not None and height is not None:
            if width[0] < 1 or height[0] < 1 or width[0] % 1 or height[0] % 1:
                raise fail(f"{camera}Width/{camera}Height must be positive integers")
            setattr(meta, f"{camera}_size", (int(width[0]), int(height[0])))
        values = [numbers(f"{k}_{camera}", 1) for k in ("fx", "fy", "mx", "my")]
        if all(v is not None for v in values):
            fx, fy, cx, cy = (float(v[0]) for v in values)
            setattr(meta, f"{camera}_intrinsics", np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float64))
    return meta


def read_label_map(path: str | Path) -> dict[str, LabelRow]:
    """``raw_category → LabelRow`` from ScanNet's ``scannetv2-labels.combined.tsv``."""
    path = Path(path)
    text = read_utf8_text(path, None, "label map")
    reader = csv.DictReader(text.splitlines(), delimiter="\t")
    needed = {"id", "raw_category", "category", "nyu40id", "nyu40class"}
    if not needed <= set(reader.fieldnames or ()):
        raise SceneInputError(None, path, f"label map header lacks {sorted(needed - set(reader.fieldnames or ()))}")
    out: dict[str, LabelRow] = {}
    for line, row in enumerate(reader, start=2):
        try:
            label = LabelRow(
                int(row["id"]), row["raw_category"], row["category"], int(row["nyu40id"]), row["nyu40class"]
            )
        except (TypeError, ValueError) as exc:
            raise SceneInputError(None, path, f"line {line} is malformed ({exc})") from exc
        if label.raw_category in out:
            raise SceneInputError(None, path, f"line {line}: raw_category {label.raw_category!r} appears twice")
        out[label.raw_category] = label
    return out
