"""ScanNet v2 scene readers: mesh, over-segmentation, aggregation, metadata, label map and RGB-D frames.

Geometry leaving ``ScanNetScene`` is in ScanNet's axis-aligned frame (``A = axisAlignment`` of ``<scene>.txt``,
identity when absent as on test scans): vertices ``A @ [x,y,z,1]``, camera-to-world poses ``A @ pose``. Units are
metres, +Z up; depth images stay uint16 in ``1/depth_shift`` metres (millimetres for ScanNet).

The PLY reader parses the header itself and maps the binary vertex and face blocks with numpy structured dtypes.
Open3D 0.19 was tried first: it keeps the vertex order and its float colours round back to the exact uint8 values,
but on a truncated file it only logs a warning and returns a partial mesh, and it accepts face indices past the
last vertex; checking those would mean parsing the header anyway. The numpy reader gives exact uint8 colours, the
file's vertex order, and an error naming the scene and file for every malformed input.

Opening a scene reads only ``<scene>.txt``: the ``.sens`` is indexed (frame headers only) the first time frames,
poses or cameras are asked for, the mesh when ``mesh()``/``objects()``/``summary()`` need it, and a frame is
decoded only by ``read_frames``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ops.core.errors import SceneInputError
from ops.core.grouping import run_bounds, runs_by_key
from ops.scannet.scene_id import SCENE_ID_PATTERN, validate_scene_id
from ops.scannet.sens import SensReader

_PLY_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}
_PLY_END_HEADER = b"end_header\n"
_MAX_PLY_HEADER = 64 * 1024
_FACE_LIST_NAMES = ("vertex_indices", "vertex_index")
EXPORTED_DEPTH_SHIFT = 1000.0  # SensReader's export writes depth PNGs in millimetres
MAX_INVALID_LISTED = 50


@dataclass
class Mesh:
    """Triangle mesh: ``vertices`` float32 [V,3] (metres), ``colors`` uint8 [V,3] RGB, ``faces`` int32 [F,3]."""

    vertices: np.ndarray
    colors: np.ndarray
    faces: np.ndarray


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


@dataclass
class Frame:
    """One RGB-D frame: ``index`` in the scene, ``rgb`` uint8 [H,W,3] (None when read without colour), ``depth``
    uint16 [h,w], aligned 4x4 pose."""

    index: int
    rgb: np.ndarray | None
    depth: np.ndarray
    pose: np.ndarray


def scene_files(scene_dir: Path, scene_id: str) -> dict[str, Path]:
    """The ScanNet file names of one scene folder."""
    return {
        "sens": scene_dir / f"{scene_id}.sens",
        "mesh": scene_dir / f"{scene_id}_vh_clean_2.ply",
        "segs": scene_dir / f"{scene_id}_vh_clean_2.0.010000.segs.json",
        "aggregation": scene_dir / f"{scene_id}.aggregation.json",
        "meta": scene_dir / f"{scene_id}.txt",
    }


# -- the mesh ---------------------------------------------------------------------------------------------------


@dataclass
class _PlyElement:
    name: str
    count: int
    properties: list[tuple[str, ...]]  # (type, name) or ("list", count type, item type, name)


def read_mesh_ply(path: str | Path, scene_id: str | None = None) -> Mesh:
    """Read a binary little-endian PLY (ScanNet ``_vh_clean_2.ply``) as stored: vertices, RGB colours, triangles."""
    path = Path(path)

    def fail(reason: str) -> SceneInputError:
        return SceneInputError(scene_id, path, reason)

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read mesh: {exc.strerror or exc}") from exc
    if not data:
        raise fail("mesh file is empty")
    header_end = data.find(_PLY_END_HEADER, 0, _MAX_PLY_HEADER)
    if not data.startswith(b"ply\n") or header_end < 0:
        raise fail("not a PLY file (missing 'ply' magic or 'end_header')")
    elements = _parse_ply_header(data[:header_end].decode("ascii", errors="replace"), fail)
    body = memoryview(data)[header_end + len(_PLY_END_HEADER) :]
    offset = 0
    blocks: dict[str, np.ndarray] = {}
    for element in elements:
        if element.name in blocks or element.name not in ("vertex", "face"):
            raise fail(f"unexpected PLY element {element.name!r} (expected one 'vertex' and one 'face')")
        dtype = _vertex_dtype(element, fail) if element.name == "vertex" else _face_dtype(element, fail)
        size = dtype.itemsize * element.count
        if offset + size > len(body):
            raise fail(f"truncated PLY: the file ends inside the {element.name} data")
        blocks[element.name] = np.frombuffer(body, dtype=dtype, count=element.count, offset=offset)
        offset += size
    if offset != len(body):
        raise fail(f"{len(body) - offset} bytes after the last PLY element (header counts do not match the data)")
    if "vertex" not in blocks or len(blocks["vertex"]) == 0:
        raise fail("mesh has no vertices")
    vertex = blocks["vertex"]
    vertices = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1).astype(np.float32)
    colors = np.stack([vertex["red"], vertex["green"], vertex["blue"]], axis=1)
    faces = np.zeros((0, 3), np.int32)
    if "face" in blocks and len(blocks["face"]):
        face = blocks["face"]
        if not (face["count"] == 3).all():
            raise fail(f"face {int(np.argmax(face['count'] != 3))} is not a triangle (only triangles are supported)")
        faces = face["indices"].astype(np.int32)
        if faces.min() < 0 or faces.max() >= len(vertices):
            raise fail(f"face indices outside 0..{len(vertices) - 1}")
    if not np.isfinite(vertices).all():
        raise fail("mesh has non-finite vertex coordinates")
    return Mesh(vertices, colors, faces)


def _parse_ply_header(text: str, fail: Callable[[str], SceneInputError]) -> list[_PlyElement]:
    lines = text.split("\n")[1:]
    if "format binary_little_endian 1.0" not in lines:
        formats = [line for line in lines if line.startswith("format")]
        raise fail(f"unsupported PLY format {formats[:1]}: only 'binary_little_endian 1.0' meshes are read")
    elements: list[_PlyElement] = []
    for line in lines:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info", "format"):
            continue
        if words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append(_PlyElement(words[1], int(words[2]), []))
        elif words[0] == "property" and elements and len(words) == 3 and words[1] in _PLY_TYPES:
            elements[-1].properties.append((words[1], words[2]))
        elif (
            words[0] == "property"
            and elements
            and len(words) == 5
            and words[1] == "list"
            and words[2] in _PLY_TYPES
            and words[3] in _PLY_TYPES
        ):
            elements[-1].properties.append(tuple(words[1:]))
        else:
            raise fail(f"malformed PLY header line {line!r}")
    return elements


def _vertex_dtype(element: _PlyElement, fail: Callable[[str], SceneInputError]) -> np.dtype:
    names = [prop[-1] for prop in element.properties]
    if any(prop[0] == "list" for prop in element.properties) or len(set(names)) != len(names):
        raise fail("vertex properties must be distinct scalars")
    types = {prop[1]: prop[0] for prop in element.properties}
    if not {"x", "y", "z", "red", "green", "blue"} <= set(types):
        raise fail("vertex element lacks x/y/z or red/green/blue")
    if {types["red"], types["green"], types["blue"]} - {"uchar", "uint8"}:
        raise fail("vertex colours must be uchar red/green/blue")
    return np.dtype([(name, "<" + _PLY_TYPES[kind]) for kind, name in element.properties])


def _face_dtype(element: _PlyElement, fail: Callable[[str], SceneInputError]) -> np.dtype:
    # Every face is read as a triangle (fixed-size record); a non-triangle shows up in the first record it breaks.
    props = element.properties
    if len(props) != 1 or props[0][0] != "list" or props[0][3] not in _FACE_LIST_NAMES:
        raise fail("face element must hold one 'list ... vertex_indices' property")
    count_type, index_type = _PLY_TYPES[props[0][1]], _PLY_TYPES[props[0][2]]
    if index_type[0] not in "iu" or count_type[0] not in "iu":
        raise fail("face vertex_indices must be integers")
    return np.dtype([("count", "<" + count_type), ("indices", "<" + index_type, (3,))])


# -- annotations and metadata -----------------------------------------------------------------------------------


def _read_json(path: Path, scene_id: str | None, what: str) -> Any:
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise SceneInputError(scene_id, path, f"cannot read {what}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SceneInputError(scene_id, path, f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise SceneInputError(scene_id, path, f"malformed {what} JSON: {exc.msg} at line {exc.lineno}") from exc


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
            and object_id >= 0
            and isinstance(label, str)
            and isinstance(segments, list)
            and all(_is_int(s) for s in segments)
        ):
            raise SceneInputError(scene_id, path, f"segGroups[{row}] needs an objectId >= 0, a label and segments")
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

    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise fail(f"cannot read scene metadata: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise fail(f"scene metadata is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
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
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise SceneInputError(None, path, f"cannot read label map: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SceneInputError(None, path, f"label map is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
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


def _read_matrix_txt(path: Path, scene_id: str, shape: tuple[int, int]) -> np.ndarray:
    """A whitespace-separated numeric matrix (``inf``/``nan`` allowed) of exactly ``shape``."""
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except OSError as exc:
        raise SceneInputError(scene_id, path, f"cannot read: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise SceneInputError(scene_id, path, f"not a numeric matrix ({exc})") from exc
    if values.shape != shape:
        raise SceneInputError(scene_id, path, f"expected a {shape[0]}x{shape[1]} matrix, got {values.shape}")
    return values


# -- frame sources ----------------------------------------------------------------------------------------------


class _SensFrames:
    """Frames of ``<scene>.sens``; the file is indexed on first use and kept open for later reads."""

    def __init__(self, path: Path, scene_id: str):
        self.path = path
        self.scene_id = scene_id

    @cached_property
    def reader(self) -> SensReader:
        return SensReader(self.path, self.scene_id)

    @cached_property
    def raw_poses(self) -> np.ndarray:
        return self.reader.poses().astype(np.float64)

    def frame_file(self, index: int) -> Path:
        return self.path

    @property
    def color_intrinsics(self) -> np.ndarray:
        return self.reader.header.intrinsic_color[:3, :3].astype(np.float64)

    @property
    def depth_intrinsics(self) -> np.ndarray:
        return self.reader.header.intrinsic_depth[:3, :3].astype(np.float64)

    @property
    def depth_shift(self) -> float:
        return float(self.reader.header.depth_shift)

    @property
    def color_size(self) -> tuple[int, int]:
        return (self.reader.header.color_width, self.reader.header.color_height)

    @property
    def depth_size(self) -> tuple[int, int]:
        return (self.reader.header.depth_width, self.reader.header.depth_height)

    def decode(self, index: int, colour: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
        if not colour:
            return None, self.reader.read_depth(index)
        ((rgb, depth, _),) = self.reader.read_frames([index])
        return rgb, depth

    def close(self) -> None:
        if "reader" in self.__dict__:
            self.reader.close()


class _ExportedFrames:
    """SensReader's export: ``color/<i>.jpg``, ``depth/<i>.png``, ``pose/<i>.txt``, ``intrinsic/*.txt``.

    Frames are numbered by position among the pose files sorted by ``<i>`` (``0.txt``, ``1.txt``, ... or
    zero-padded). Without ``intrinsic/intrinsic_color.txt`` the colour intrinsics are the depth ones, which is
    only accepted when the colour images have the depth size (exports with colour registered to depth).
    """

    depth_shift = EXPORTED_DEPTH_SHIFT

    def __init__(self, scene_dir: Path, scene_id: str):
        self.dir = scene_dir
        self.scene_id = scene_id

    @cached_property
    def stems(self) -> list[str]:
        pose_dir = self.dir / "pose"
        stems = [name[:-4] for name in os.listdir(pose_dir) if name.endswith(".txt")]
        stems = sorted((stem for stem in stems if stem.isascii() and stem.isdigit()), key=int)
        if not stems:
            raise SceneInputError(self.scene_id, pose_dir, "no pose/<i>.txt files")
        return stems

    def frame_file(self, index: int) -> Path:
        return self.dir / "pose" / f"{self.stems[index]}.txt"

    @cached_property
    def raw_poses(self) -> np.ndarray:
        return np.stack([_read_matrix_txt(self.frame_file(i), self.scene_id, (4, 4)) for i in range(len(self.stems))])

    @cached_property
    def depth_intrinsics(self) -> np.ndarray:
        return _read_matrix_txt(self.dir / "intrinsic" / "intrinsic_depth.txt", self.scene_id, (4, 4))[:3, :3]

    @cached_property
    def color_intrinsics(self) -> np.ndarray:
        path = self.dir / "intrinsic" / "intrinsic_color.txt"
        if path.is_file():
            return _read_matrix_txt(path, self.scene_id, (4, 4))[:3, :3]
        if self.color_size != self.depth_size:
            raise SceneInputError(self.scene_id, path, "missing, and the colour images are not at the depth size")
        return self.depth_intrinsics

    def _image_size(self, path: Path) -> tuple[int, int]:
        try:
            with Image.open(path) as image:  # reads the header only
                return image.size
        except OSError as exc:
            raise SceneInputError(self.scene_id, path, f"not a readable image ({exc})") from exc

    @cached_property
    def color_size(self) -> tuple[int, int]:
        return self._image_size(self.dir / "color" / f"{self.stems[0]}.jpg")

    @cached_property
    def depth_size(self) -> tuple[int, int]:
        return self._image_size(self.dir / "depth" / f"{self.stems[0]}.png")

    def decode(self, index: int, colour: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
        depth_path = self.dir / "depth" / f"{self.stems[index]}.png"
        rgb = self._decode_colour(index) if colour else None
        depth = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED)
        if depth is None or depth.dtype != np.uint16 or depth.ndim != 2:
            raise SceneInputError(self.scene_id, depth_path, "depth image missing or not 16-bit single-channel")
        if (depth.shape[1], depth.shape[0]) != self.depth_size:
            raise SceneInputError(self.scene_id, depth_path, f"depth image is not {self.depth_size} like frame 0")
        return rgb, depth

    def _decode_colour(self, index: int) -> np.ndarray:
        color_path = self.dir / "color" / f"{self.stems[index]}.jpg"
        rgb = cv2.imread(str(color_path), cv2.IMREAD_COLOR_RGB)
        if rgb is None:
            raise SceneInputError(self.scene_id, color_path, "colour image missing or does not decode")
        if (rgb.shape[1], rgb.shape[0]) != self.color_size:
            raise SceneInputError(self.scene_id, color_path, f"colour image is not {self.color_size} like frame 0")
        return rgb

    def close(self) -> None:
        pass


# -- the scene --------------------------------------------------------------------------------------------------


class ScanNetScene:
    """One ScanNet scene folder (``.sens`` or exported frames). Opening reads ``<scene>.txt`` only.

    Holds the ``.sens`` open once frames were read: use it as a context manager or call ``close()``.
    """

    def __init__(self, scene_dir: str | Path, label_map: str | Path | None = None):
        self.dir = Path(scene_dir)
        self.scene_id = validate_scene_id(self.dir.name)
        self.files = scene_files(self.dir, self.scene_id)
        self.label_map_path = Path(label_map) if label_map is not None else None
        self.meta = read_scene_meta(self.files["meta"], self.scene_id)
        self._frames: _SensFrames | _ExportedFrames
        if self.files["sens"].is_file():
            self.source = "sens"
            self._frames = _SensFrames(self.files["sens"], self.scene_id)
        elif (self.dir / "pose").is_dir():
            self.source = "exported"
            self._frames = _ExportedFrames(self.dir, self.scene_id)
        else:
            raise SceneInputError(self.scene_id, self.files["sens"], "missing, and no exported pose/ folder either")

    def __enter__(self) -> ScanNetScene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the ``.sens`` file if it was opened."""
        self._frames.close()

    # -- cameras and frames ----------------------------------------------------------------------------------
    @property
    def axis_alignment(self) -> np.ndarray:
        """4x4 float64 ``axisAlignment`` (identity when ``<scene>.txt`` has none)."""
        return self.meta.axis_alignment

    @property
    def num_frames(self) -> int:
        return len(self._frames.raw_poses)

    @property
    def color_intrinsics(self) -> np.ndarray:
        """3x3 float64, pixels of the colour image."""
        return self._frames.color_intrinsics

    @property
    def depth_intrinsics(self) -> np.ndarray:
        """3x3 float64, pixels of the depth image."""
        return self._frames.depth_intrinsics

    @property
    def depth_shift(self) -> float:
        """Depth units per metre (1000: depth in millimetres)."""
        return self._frames.depth_shift

    @property
    def color_size(self) -> tuple[int, int]:
        """``(width, height)`` of the colour images."""
        return self._frames.color_size

    @property
    def depth_size(self) -> tuple[int, int]:
        """``(width, height)`` of the depth images."""
        return self._frames.depth_size

    @cached_property
    def _valid(self) -> np.ndarray:
        return np.isfinite(self._frames.raw_poses).all(axis=(1, 2))

    @cached_property
    def _aligned_poses(self) -> np.ndarray:
        aligned = np.full((self.num_frames, 4, 4), -np.inf)
        aligned[self._valid] = np.einsum("ij,njk->nik", self.axis_alignment, self._frames.raw_poses[self._valid])
        return aligned

    def valid_frame_mask(self) -> np.ndarray:
        """bool [N]: frames whose stored pose is entirely finite."""
        return self._valid.copy()

    def poses(self) -> np.ndarray:
        """Aligned camera-to-world poses float64 [N,4,4] (``A @ pose``); invalid frames are all ``-inf``."""
        return self._aligned_poses.copy()

    def read_frames(self, indices: Iterable[int], colour: bool = True) -> list[Frame]:
        """Decode only the requested frames; an out-of-range index or a non-finite pose is refused.

        With ``colour=False`` only the depth is decoded and ``Frame.rgb`` is None (depth tests need no colour)."""
        indices = [int(i) for i in indices]
        valid = self._valid
        for index in indices:
            if not 0 <= index < self.num_frames:
                where = self.files["sens"] if self.source == "sens" else self.dir / "pose"
                raise SceneInputError(self.scene_id, where, f"frame {index} out of range (0..{self.num_frames - 1})")
            if not valid[index]:
                raise SceneInputError(
                    self.scene_id,
                    self._frames.frame_file(index),
                    f"frame {index} has a non-finite pose (invalid frame)",
                )
        poses = self._aligned_poses
        return [Frame(index, *self._frames.decode(index, colour), poses[index].copy()) for index in indices]

    # -- mesh and objects ------------------------------------------------------------------------------------
    @cached_property
    def _mesh(self) -> Mesh:
        raw = read_mesh_ply(self.files["mesh"], self.scene_id)
        a = self.axis_alignment
        aligned = (raw.vertices.astype(np.float64) @ a[:3, :3].T + a[:3, 3]).astype(np.float32)
        return Mesh(aligned, raw.colors, raw.faces)

    def mesh(self) -> Mesh:
        """The ``_vh_clean_2`` mesh with aligned vertices (a fresh copy each call)."""
        mesh = self._mesh
        return Mesh(mesh.vertices.copy(), mesh.colors.copy(), mesh.faces.copy())

    @cached_property
    def _groups(self) -> list[SegGroup]:
        return read_aggregation(self.files["aggregation"], self.scene_id)

    @cached_property
    def _object_ids(self) -> np.ndarray:
        segs = read_segs(self.files["segs"], self.scene_id)
        num_vertices = len(self._mesh.vertices)
        if len(segs) != num_vertices:
            raise SceneInputError(
                self.scene_id, self.files["segs"], f"{len(segs)} segIndices for {num_vertices} mesh vertices"
            )
        groups = self._groups  # outside the try: its SceneInputError already names the aggregation file
        try:
            return vertex_object_ids(segs, groups)
        except ValueError as exc:
            raise SceneInputError(self.scene_id, self.files["aggregation"], str(exc)) from exc

    def object_ids(self) -> np.ndarray:
        """ScanNet objectId of every mesh vertex (int32 [V], -1 = unannotated)."""
        return self._object_ids.copy()

    @cached_property
    def _labels(self) -> dict[str, LabelRow]:
        return read_label_map(self.label_map_path) if self.label_map_path is not None else {}

    def object_labels(self) -> dict[int, str]:
        """``{objectId: label}`` of every aggregation object (no vertex work, unlike ``objects``)."""
        return {group.object_id: group.label for group in self._groups}

    def objects(self) -> list[dict[str, Any]]:
        """Every aggregation object by objectId: ``object_id``, ``label``, ``num_vertices``, aligned ``box``.

        ``box`` is ``[cx, cy, cz, sx, sy, sz]`` (centre and size of the aligned vertices' min/max), ``None`` for an
        object with no vertex; ``nyu40id`` is added when a label map was given and knows the label.
        """
        runs = runs_by_key(self._object_ids)
        lows, highs = run_bounds(self._mesh.vertices[runs.order], runs.starts)
        run_of = {int(key): k for k, key in enumerate(runs.keys)}
        out = []
        for group in self._groups:
            k = run_of.get(group.object_id)
            box, count = None, 0
            if k is not None:
                low, high = lows[k].astype(np.float64), highs[k].astype(np.float64)
                box = [round(float(v), 6) for v in np.concatenate([(low + high) / 2, high - low])]
                count = int(runs.ends[k] - runs.starts[k])
            row: dict[str, Any] = {
                "object_id": group.object_id,
                "label": group.label,
                "num_vertices": count,
                "box": box,
            }
            if group.label in self._labels:
                row["nyu40id"] = self._labels[group.label].nyu40id
            out.append(row)
        return out

    def summary(self, max_invalid_listed: int = MAX_INVALID_LISTED) -> dict[str, Any]:
        """The ``gpt4scene inspect`` JSON: frames, cameras, alignment, mesh, objects, labels and aligned bounds."""
        valid = self.valid_frame_mask()
        mesh = self._mesh
        objects = self.objects()
        labels: dict[str, int] = {}
        for obj in objects:
            labels[obj["label"]] = labels.get(obj["label"], 0) + 1
        return {
            "scene_id": self.scene_id,
            "source": self.source,
            "num_frames": self.num_frames,
            "num_valid_frames": int(valid.sum()),
            "invalid_frames": np.flatnonzero(~valid)[:max_invalid_listed].tolist(),
            "color_size": list(self.color_size),
            "depth_size": list(self.depth_size),
            "color_intrinsics": np.round(self.color_intrinsics, 6).tolist(),
            "depth_intrinsics": np.round(self.depth_intrinsics, 6).tolist(),
            "depth_shift": self.depth_shift,
            "axis_alignment": np.round(self.axis_alignment, 9).tolist(),
            "num_vertices": int(len(mesh.vertices)),
            "num_faces": int(len(mesh.faces)),
            "num_objects": len(objects),
            "labels": dict(sorted(labels.items())),
            "bounds": [np.round(mesh.vertices.min(0), 4).tolist(), np.round(mesh.vertices.max(0), 4).tolist()],
        }


def open_scene(scene_dir: str | Path, label_map: str | Path | None = None) -> ScanNetScene:
    """Open a ScanNet scene folder; the folder name is the scene id and is validated before any path is built."""
    return ScanNetScene(scene_dir, label_map)


def check_scene_dir(scene_dir: str | Path) -> list[str]:
    """Why a folder cannot be used as a scene (empty when it can), each problem naming its file.

    Cheap: the folder name, and presence and non-zero size of files; nothing is opened or decoded.
    """
    scene_dir = Path(scene_dir)
    name = scene_dir.name
    if not SCENE_ID_PATTERN.fullmatch(name):
        return [f"{scene_dir}: invalid scene id {name!r}: must match {SCENE_ID_PATTERN.pattern}"]
    if not scene_dir.is_dir():
        return [f"{scene_dir}: not a folder"]
    files = scene_files(scene_dir, name)
    problems = []
    for key in ("mesh", "segs", "aggregation", "meta", "sens"):
        path = files[key]
        if path.is_file() and path.stat().st_size == 0:
            problems.append(f"empty {path.name}")
        elif key != "sens" and not path.is_file():
            problems.append(f"missing {path.name}")
    if not files["sens"].is_file():
        exported = ["color/", "depth/", "pose/", "intrinsic/intrinsic_depth.txt"]
        absent = [part for part in exported if not (scene_dir / part).exists()]
        if len(absent) == len(exported):
            problems.append(f"missing {files['sens'].name} (and no exported color/ depth/ pose/ intrinsic/)")
        else:
            problems += [f"missing {part} (exported frames; no {files['sens'].name})" for part in absent]
    return problems
