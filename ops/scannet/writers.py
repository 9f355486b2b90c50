"""Writers for ScanNet v2 scene files, byte-compatible with the published formats.

Used by the synthetic generator (``ops.synthetic``); the readers (``ops.scannet.scene``, ``ply``, ``annotations``,
``frame_sources``) never trust these writers.
Every file goes through ``ops.core.atomic`` (temporary name, fsync, rename).

Formats (docs/REFERENCE.md §1):
- ``<scene>_vh_clean_2.ply``: binary little-endian PLY with VCGLIB's header; vertex x y z (float32) and
  red green blue alpha (uint8); faces as ``list uchar int vertex_indices``.
- ``<scene>_vh_clean_2.0.010000.segs.json``: ``{"params", "sceneId", "segIndices"}`` (one segment id per vertex).
- ``<scene>.aggregation.json``: ``{"sceneId": "scannet.<scene>", "appId", "segGroups", "segmentsFile"}``;
  ``objectId`` is 0-based.
- ``<scene>.txt``: ``key = value`` lines, keys sorted as in ScanNet's files.
- exported frames: ``color/<i>.jpg``, ``depth/<i>.png`` (uint16), ``pose/<i>.txt``, ``intrinsic/*.txt``, as written
  by ScanNet's ``SensReader/python/reader.py`` (matrices as ``%f`` rows).
- ``scannetv2-labels.combined.tsv``: the 17 tab-separated columns of the published file.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ops.core.atomic import write_bytes, write_json, write_text
from ops.scannet.sens import SensFrame, SensHeader, decode_depth

PLY_HEADER_TEMPLATE = (
    "ply\n"
    "format binary_little_endian 1.0\n"
    "comment VCGLIB generated\n"
    "element vertex {num_vertices}\n"
    "property float x\n"
    "property float y\n"
    "property float z\n"
    "property uchar red\n"
    "property uchar green\n"
    "property uchar blue\n"
    "property uchar alpha\n"
    "element face {num_faces}\n"
    "property list uchar int vertex_indices\n"
    "end_header\n"
)
_PLY_VERTEX = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")]
)
_PLY_FACE = np.dtype([("count", "u1"), ("indices", "<i4", (3,))])

# The parameters ScanNet's segmentator recorded in every ``*.segs.json`` (values are strings there too).
SEGS_PARAMS = {
    "kThresh": "0.0001",
    "segMinVerts": "20",
    "minPoints": "750",
    "maxPoints": "5000",
    "thinThresh": "0.05",
    "flatThresh": "0.001",
    "minLength": "0.02",
    "maxLength": "1",
}

LABEL_TSV_COLUMNS = (
    "id",
    "raw_category",
    "category",
    "count",
    "nyu40id",
    "eigen13id",
    "nyuClass",
    "nyu40class",
    "eigen13class",
    "ModelNet40",
    "ModelNet10",
    "ShapeNetCore55",
    "synsetoffset",
    "wnsynsetid",
    "wnsynsetkey",
    "mpcat40",
    "mpcat40index",
)

EXPORTED_INTRINSIC_FILES = ("intrinsic_color", "extrinsic_color", "intrinsic_depth", "extrinsic_depth")


@dataclass(frozen=True)
class AggregationGroup:
    """One annotated object: 0-based ``object_id``, raw ScanNet ``label``, and the segment ids it covers."""

    object_id: int
    label: str
    segments: Sequence[int]


def ply_header(num_vertices: int, num_faces: int) -> str:
    """The exact header text of a ScanNet ``_vh_clean_2.ply`` with the given element counts."""
    return PLY_HEADER_TEMPLATE.format(num_vertices=num_vertices, num_faces=num_faces)


def write_mesh_ply(path: str | Path, vertices: np.ndarray, colors: np.ndarray, faces: np.ndarray) -> None:
    """Write a triangle mesh as ScanNet's binary ``_vh_clean_2.ply`` (alpha is 255 everywhere).

    ``vertices`` float [V,3] metres, ``colors`` uint8 [V,3] RGB, ``faces`` int [F,3] vertex indices.
    """
    vertices = np.asarray(vertices)
    colors = np.asarray(colors)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"{path}: vertices must be [V,3], got {vertices.shape}")
    if colors.shape != vertices.shape or colors.dtype != np.uint8:
        raise ValueError(f"{path}: colors must be uint8 {vertices.shape}, got {colors.dtype} {colors.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"{path}: faces must be [F,3], got {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"{path}: face indices outside 0..{len(vertices) - 1}")
    vertex_rows = np.empty(len(vertices), dtype=_PLY_VERTEX)
    for axis, name in enumerate(("x", "y", "z")):
        vertex_rows[name] = vertices[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        vertex_rows[name] = colors[:, channel]
    vertex_rows["alpha"] = 255
    face_rows = np.empty(len(faces), dtype=_PLY_FACE)
    face_rows["count"] = 3
    face_rows["indices"] = faces
    header = ply_header(len(vertices), len(faces)).encode("ascii")
    write_bytes(path, header + vertex_rows.tobytes() + face_rows.tobytes())


def write_segs(path: str | Path, scene_id: str, seg_indices: np.ndarray) -> None:
    """Write ``<scene>_vh_clean_2.0.010000.segs.json``: one segment id per mesh vertex, in vertex order."""
    seg_indices = np.asarray(seg_indices)
    if seg_indices.ndim != 1 or not np.issubdtype(seg_indices.dtype, np.integer):
        raise ValueError(f"{path}: seg_indices must be 1-D integers, got {seg_indices.dtype} {seg_indices.shape}")
    write_json(path, {"params": dict(SEGS_PARAMS), "sceneId": scene_id, "segIndices": seg_indices.tolist()})


def write_aggregation(path: str | Path, scene_id: str, groups: Sequence[AggregationGroup]) -> None:
    """Write ``<scene>.aggregation.json``: one segGroup per object (``id`` = ``objectId``, 0-based)."""
    object_ids = [group.object_id for group in groups]
    if len(set(object_ids)) != len(object_ids):
        raise ValueError(f"{path}: duplicate object ids")
    seg_groups = [
        {
            "id": int(group.object_id),
            "objectId": int(group.object_id),
            "segments": [int(s) for s in group.segments],
            "label": group.label,
        }
        for group in groups
    ]
    write_json(
        path,
        {
            "sceneId": f"scannet.{scene_id}",
            "appId": "Aggregator.v2",
            "segGroups": seg_groups,
            "segmentsFile": f"scannet.{scene_id}_vh_clean_2.0.010000.segs.json",
        },
    )


def _format_meta_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("scene meta values must be numbers, strings or numeric arrays, not bool")
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):f}"
    array = np.asarray(value, dtype=np.float64).reshape(-1)
    return " ".join(f"{v:f}" for v in array)


def write_scene_meta(path: str | Path, fields: Mapping[str, Any]) -> None:
    """Write ``<scene>.txt`` as ``key = value`` lines, keys sorted (ScanNet's order).

    Strings are written as is, integers as integers, floats and arrays (e.g. the 16 values of
    ``axisAlignment``, row-major) with ``%f``.
    """
    lines = [f"{key} = {_format_meta_value(fields[key])}\n" for key in sorted(fields)]
    write_text(path, "".join(lines))


def format_matrix(matrix: np.ndarray) -> str:
    """A matrix as SensReader's ``save_mat_to_file`` writes it: one ``%f`` row per line (``-inf`` kept)."""
    matrix = np.atleast_2d(np.asarray(matrix, dtype=np.float64))
    return "".join(" ".join(f"{v:f}" for v in row) + "\n" for row in matrix)


def write_exported_frames(out_dir: str | Path, header: SensHeader, frames: Iterable[SensFrame]) -> int:
    """Write frames in SensReader's exported layout under ``out_dir``; returns the number of frames.

    ``color/<i>.jpg`` (the frame's JPEG bytes as is), ``depth/<i>.png`` (uint16, same units as the ``.sens``),
    ``pose/<i>.txt`` (camera-to-world, ``-inf`` rows for invalid poses) and ``intrinsic/{intrinsic,extrinsic}_
    {color,depth}.txt``. ``i`` is the unpadded frame index. Takes the same ``SensHeader``/``SensFrame`` as
    ``ops.scannet.sens.write_sens``, so a scene can be written in either layout from one frame stream.
    """
    if header.color_compression != 2:
        raise ValueError(f"{out_dir}: exported colour must be JPEG (compression 2), got {header.color_compression}")
    out_dir = Path(out_dir)
    matrices = {
        "intrinsic_color": header.intrinsic_color,
        "extrinsic_color": header.extrinsic_color,
        "intrinsic_depth": header.intrinsic_depth,
        "extrinsic_depth": header.extrinsic_depth,
    }
    for name in EXPORTED_INTRINSIC_FILES:
        write_text(out_dir / "intrinsic" / f"{name}.txt", format_matrix(matrices[name]))
    count = 0
    for index, frame in enumerate(frames):
        depth = decode_depth(frame.depth_bytes, header, f"{out_dir} frame {index}")
        ok, png = cv2.imencode(".png", depth)
        if not ok:
            raise ValueError(f"{out_dir} frame {index}: PNG encoding failed")
        write_bytes(out_dir / "color" / f"{index}.jpg", frame.color_bytes)
        write_bytes(out_dir / "depth" / f"{index}.png", png.tobytes())
        write_text(out_dir / "pose" / f"{index}.txt", format_matrix(frame.camera_to_world))
        count += 1
    if header.num_frames and count != header.num_frames:
        raise ValueError(f"{out_dir}: header says {header.num_frames} frames, {count} were written")
    return count


def write_label_map_tsv(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write ``scannetv2-labels.combined.tsv``: the published 17-column header, then one line per row.

    Each row maps column names (``LABEL_TSV_COLUMNS``) to values; missing columns are left empty.
    """
    buffer = io.StringIO()
    buffer.write("\t".join(LABEL_TSV_COLUMNS) + "\n")
    for row in rows:
        unknown = set(row) - set(LABEL_TSV_COLUMNS)
        if unknown:
            raise ValueError(f"{path}: unknown label map columns {sorted(unknown)}")
        buffer.write("\t".join(str(row.get(column, "")) for column in LABEL_TSV_COLUMNS) + "\n")
    write_text(path, buffer.getvalue())
