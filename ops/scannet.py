"""ScanNet v2 scene readers: mesh, over-segmentation, aggregation, metadata, label map and RGB-D frames.

Geometry leaving ``ScanNetScene`` is in ScanNet's axis-aligned frame (``A = axisAlignment`` of ``<scene>.txt``,
identity when absent as on test scans): vertices ``A @ [x,y,z,1]``, camera-to-world poses ``A @ pose``. Units are
metres, +Z up; depth images stay uint16 in ``1/depth_shift`` metres (millimetres for ScanNet).

The PLY reader parses the binary header itself and maps the vertex and face blocks with numpy structured dtypes:
Open3D's reader returns colours as floats and only warns (returning an empty mesh) on a corrupt file, while this
gives exact uint8 colours, the file's vertex order, and an error naming the scene and file.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ops.errors import SceneInputError
from ops.scene_id import SCENE_ID_PATTERN, validate_scene_id
from ops.sens import SensReader

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2", "ushort": "u2",
    "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4",
    "double": "f8", "float64": "f8",
}  # fmt: skip
_MAX_PLY_HEADER = 64 * 1024


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
    """``<scene>.txt``: axis alignment (4x4), raw key/value fields, and the colour/depth cameras when present."""

    axis_alignment: np.ndarray
    fields: dict[str, str]
    color_size: tuple[int, int] | None = None
    depth_size: tuple[int, int] | None = None
    color_intrinsics: np.ndarray | None = None
    depth_intrinsics: np.ndarray | None = None


@dataclass
class Frame:
    """One RGB-D frame: source ``index``, ``rgb`` uint8 [H,W,3], ``depth`` uint16 [h,w], aligned camera-to-world."""

    index: int
    rgb: np.ndarray
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


# -- individual files -------------------------------------------------------------------------------------------


def read_mesh_ply(path: str | Path, scene_id: str | None = None) -> Mesh:
    """Read a binary little-endian PLY (ScanNet ``_vh_clean_2.ply``) as stored: vertices, RGB colours, triangles."""
    path = Path(path)

    def fail(reason: str) -> SceneInputError:
        return SceneInputError(scene_id, path, reason)

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read mesh: {exc.strerror or exc}") from exc
    end = data.find(b"end_header\n", 0, _MAX_PLY_HEADER)
    if not data.startswith(b"ply\n") or end < 0:
        raise fail("not a PLY file (missing 'ply' magic or 'end_header')")
    header = data[:end].decode("ascii", errors="replace").splitlines()
    body = memoryview(data)[end + len(b"end_header\n") :]
    if "format binary_little_endian 1.0" not in header:
        raise fail("only binary_little_endian PLY meshes are supported")
    elements: list[tuple[str, int, list[tuple[str, ...]]]] = []
    for line in header[1:]:
        words = line.split()
        if words and words[0] == "element":
            elements.append((words[1], int(words[2]), []))
        elif words and words[0] == "property" and elements:
            elements[-1][2].append(tuple(words[1:]))
    offset = 0
    vertices = colors = faces = None
    for name, count, props in elements:
        if name == "vertex":
            dtype = np.dtype([(p[-1], "<" + _PLY_TYPES[p[0]]) for p in props])
            block = _take(body, offset, dtype, count, fail)
            offset += dtype.itemsize * count
            names = dtype.names or ()
            if not {"x", "y", "z"} <= set(names):
                raise fail("vertex element lacks x/y/z")
            vertices = np.stack([block["x"], block["y"], block["z"]], axis=1).astype(np.float32)
            if {"red", "green", "blue"} <= set(names):
                colors = np.stack([block["red"], block["green"], block["blue"]], axis=1).astype(np.uint8)
            else:
                colors = np.full((count, 3), 128, np.uint8)
        elif name == "face":
            if len(props) != 1 or props[0][0] != "list":
                raise fail("face element must be a single 'list' property")
            count_type, index_type = _PLY_TYPES[props[0][1]], _PLY_TYPES[props[0][2]]
            dtype = np.dtype([("n", "<" + count_type), ("idx", "<" + index_type, (3,))])
            block = _take(body, offset, dtype, count, fail)
            offset += dtype.itemsize * count
            if count and not (block["n"] == 3).all():
                raise fail("only triangle faces are supported")
            faces = block["idx"].astype(np.int32)
        else:
            raise fail(f"unexpected PLY element {name!r}")
    if vertices is None or len(vertices) == 0:
        raise fail("mesh has no vertices")
    if faces is None:
        faces = np.zeros((0, 3), np.int32)
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise fail("face indices out of range")
    if not np.isfinite(vertices).all():
        raise fail("mesh has non-finite vertex coordinates")
    return Mesh(vertices, colors, faces)


def _take(body: memoryview, offset: int, dtype: np.dtype, count: int, fail) -> np.ndarray:
    if offset + dtype.itemsize * count > len(body):
        raise fail("truncated PLY: the file ends inside its data")
    return np.frombuffer(body, dtype=dtype, count=count, offset=offset)


def _read_json(path: Path, scene_id: str | None, what: str) -> Any:
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as exc:
        raise SceneInputError(scene_id, path, f"missing {what}") from exc
    except UnicodeDecodeError as exc:
        raise SceneInputError(scene_id, path, f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise SceneInputError(scene_id, path, f"malformed {what} JSON: {exc.msg} at line {exc.lineno}") from exc


def read_segs(path: str | Path, scene_id: str | None = None) -> np.ndarray:
    """Per-vertex segment ids (int64 [V]) of ``*_vh_clean_2.0.010000.segs.json``."""
    path = Path(path)
    data = _read_json(path, scene_id, "segmentation")
    indices = data.get("segIndices") if isinstance(data, dict) else None
    if not isinstance(indices, list) or not all(isinstance(i, int) for i in indices[:1000]):
        raise SceneInputError(scene_id, path, "segmentation has no integer 'segIndices' list")
    try:
        return np.asarray(indices, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise SceneInputError(scene_id, path, f"'segIndices' is not a list of integers ({exc})") from exc


def read_aggregation(path: str | Path, scene_id: str | None = None) -> list[SegGroup]:
    """The ``segGroups`` of ``<scene>.aggregation.json``, sorted by ``objectId``."""
    path = Path(path)
    data = _read_json(path, scene_id, "aggregation")
    groups = data.get("segGroups") if isinstance(data, dict) else None
    if not isinstance(groups, list):
        raise SceneInputError(scene_id, path, "aggregation has no 'segGroups' list")
    out = []
    for row, group in enumerate(groups):
        try:
            out.append(SegGroup(int(group["objectId"]), str(group["label"]), tuple(int(s) for s in group["segments"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise SceneInputError(scene_id, path, f"segGroups[{row}] is malformed ({exc!r})") from exc
    ids = [group.object_id for group in out]
    if len(set(ids)) != len(ids):
        raise SceneInputError(scene_id, path, "duplicate objectId in segGroups")
    return sorted(out, key=lambda group: group.object_id)


def vertex_object_ids(seg_indices: np.ndarray, seg_groups: list[SegGroup]) -> np.ndarray:
    """Object id of every vertex (int32 [V], -1 where no group claims the vertex's segment)."""
    seg_to_object: dict[int, int] = {}
    for group in seg_groups:
        for segment in group.segments:
            if seg_to_object.setdefault(segment, group.object_id) != group.object_id:
                raise ValueError(f"segment {segment} belongs to objects {seg_to_object[segment]} and {group.object_id}")
    if not seg_to_object:
        return np.full(len(seg_indices), -1, np.int32)
    keys = np.fromiter(seg_to_object.keys(), np.int64)
    values = np.fromiter(seg_to_object.values(), np.int32)
    order = np.argsort(keys)
    keys, values = keys[order], values[order]
    position = np.clip(np.searchsorted(keys, seg_indices), 0, len(keys) - 1)
    return np.where(keys[position] == seg_indices, values[position], -1).astype(np.int32)


def read_scene_meta(path: str | Path, scene_id: str | None = None) -> SceneMeta:
    """Parse ``<scene>.txt`` (``key = value`` lines)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise SceneInputError(scene_id, path, "missing scene metadata") from exc
    except UnicodeDecodeError as exc:
        raise SceneInputError(scene_id, path, "scene metadata is not UTF-8") from exc
    fields = {}
    for line in text.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key.strip()] = value.strip()

    def floats(key: str, n: int) -> np.ndarray | None:
        if key not in fields:
            return None
        try:
            values = np.array([float(v) for v in fields[key].split()], dtype=np.float64)
        except ValueError as exc:
            raise SceneInputError(scene_id, path, f"{key} is not numeric") from exc
        if values.size != n or not np.isfinite(values).all():
            raise SceneInputError(scene_id, path, f"{key} must hold {n} finite numbers, has {values.size}")
        return values

    alignment = floats("axisAlignment", 16)
    meta = SceneMeta(np.eye(4) if alignment is None else alignment.reshape(4, 4), fields)
    for camera in ("color", "depth"):
        width, height = fields.get(f"{camera}Width"), fields.get(f"{camera}Height")
        values = [floats(f"{k}_{camera}", 1) for k in ("fx", "fy", "mx", "my")]
        if width and height:
            setattr(meta, f"{camera}_size", (int(float(width)), int(float(height))))
        if all(v is not None for v in values):
            fx, fy, cx, cy = (float(v[0]) for v in values)
            setattr(meta, f"{camera}_intrinsics", np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float64))
    return meta


@dataclass(frozen=True)
class LabelRow:
    """One row of ``scannetv2-labels.combined.tsv``."""

    id: int
    raw_category: str
    category: str
    nyu40id: int
    nyu40class: str


def read_label_map(path: str | Path) -> dict[str, LabelRow]:
    """``raw_category → LabelRow`` from ScanNet's ``scannetv2-labels.combined.tsv``."""
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    out = {}
    for n, row in enumerate(rows, start=2):
        try:
            out[row["raw_category"]] = LabelRow(int(row["id"]), row["raw_category"], row["category"],
                                                int(row["nyu40id"]), row["nyu40class"])  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise SceneInputError(None, path, f"line {n} is malformed ({exc!r})") from exc
    return out


def _read_matrix_txt(path: Path, scene_id: str, shape: tuple[int, int]) -> np.ndarray:
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except FileNotFoundError as exc:
        raise SceneInputError(scene_id, path, "missing file") from exc
    except ValueError as exc:
        raise SceneInputError(scene_id, path, f"not a numeric matrix ({exc})") from exc
    if values.shape != shape:
        raise SceneInputError(scene_id, path, f"expected a {shape[0]}x{shape[1]} matrix, got {values.shape}")
    return values


# -- frame sources ----------------------------------------------------------------------------------------------


class _SensSource:
    def __init__(self, path: Path, scene_id: str):
        self.path = path
        reader = SensReader(path, scene_id)
        self.header = reader.header
        self.poses = reader.poses().astype(np.float64)
        reader.close()
        self.scene_id = scene_id
        self.color_intrinsics = self.header.intrinsic_color[:3, :3].astype(np.float64)
        self.depth_intrinsics = self.header.intrinsic_depth[:3, :3].astype(np.float64)
        self.depth_shift = float(self.header.depth_shift)
        self.color_size = (self.header.color_width, self.header.color_height)
        self.depth_size = (self.header.depth_width, self.header.depth_height)

    def read(self, indices: list[int]) -> list[tuple[int, np.ndarray, np.ndarray]]:
        with SensReader(self.path, self.scene_id) as reader:
            out = []
            for index in indices:
                try:
                    rgb, depth, _ = reader.read_frames([index])[0]
                except ValueError as exc:
                    raise SceneInputError(self.scene_id, self.path, str(exc)) from exc
                out.append((index, rgb, depth))
            return out


class _ExportedSource:
    """SensReader's export: ``color/<i>.jpg``, ``depth/<i>.png``, ``pose/<i>.txt``, ``intrinsic/*.txt``."""

    def __init__(self, scene_dir: Path, scene_id: str):
        self.dir = scene_dir
        self.scene_id = scene_id
        pose_files = sorted((scene_dir / "pose").glob("*.txt"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1)
        self.frame_ids = [int(p.stem) for p in pose_files if p.stem.isdigit()]
        if not self.frame_ids:
            raise SceneInputError(scene_id, scene_dir / "pose", "no pose/<i>.txt files")
        self.poses = np.stack([_read_matrix_txt(scene_dir / "pose" / f"{i}.txt", scene_id, (4, 4))
                               for i in self.frame_ids])  # fmt: skip
        self.color_intrinsics = _read_matrix_txt(scene_dir / "intrinsic" / "intrinsic_color.txt", scene_id, (4, 4))[:3, :3]
        self.depth_intrinsics = _read_matrix_txt(scene_dir / "intrinsic" / "intrinsic_depth.txt", scene_id, (4, 4))[:3, :3]
        self.depth_shift = 1000.0
        first_rgb, first_depth = self._load(self.frame_ids[0])
        self.color_size = (first_rgb.shape[1], first_rgb.shape[0])
        self.depth_size = (first_depth.shape[1], first_depth.shape[0])

    def _load(self, frame_id: int) -> tuple[np.ndarray, np.ndarray]:
        color_path = self.dir / "color" / f"{frame_id}.jpg"
        depth_path = self.dir / "depth" / f"{frame_id}.png"
        rgb = cv2.imread(str(color_path), cv2.IMREAD_COLOR)
        if rgb is None:
            raise SceneInputError(self.scene_id, color_path, "colour image missing or does not decode")
        depth = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED)
        if depth is None or depth.dtype != np.uint16 or depth.ndim != 2:
            raise SceneInputError(self.scene_id, depth_path, "depth image missing or not 16-bit single-channel")
        return cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB), depth

    def read(self, indices: list[int]) -> list[tuple[int, np.ndarray, np.ndarray]]:
        return [(index, *self._load(self.frame_ids[index])) for index in indices]


# -- the scene --------------------------------------------------------------------------------------------------


class ScanNetScene:
    """One ScanNet scene folder (``.sens`` or exported frames). Opening is cheap; files are read when asked."""

    def __init__(self, scene_dir: str | Path, label_map: str | Path | None = None):
        self.dir = Path(scene_dir)
        self.scene_id = validate_scene_id(self.dir.name)
        self.files = scene_files(self.dir, self.scene_id)
        self.label_map_path = Path(label_map) if label_map else None
        self.meta = read_scene_meta(self.files["meta"], self.scene_id)
        if self.files["sens"].is_file():
            self.source = "sens"
            self._frames = _SensSource(self.files["sens"], self.scene_id)
        elif (self.dir / "pose").is_dir():
            self.source = "exported"
            self._frames = _ExportedSource(self.dir, self.scene_id)
        else:
            raise SceneInputError(self.scene_id, self.files["sens"], "no .sens file and no exported pose/ folder")

    @property
    def axis_alignment(self) -> np.ndarray:
        return self.meta.axis_alignment

    @property
    def num_frames(self) -> int:
        return len(self._frames.poses)

    @property
    def color_intrinsics(self) -> np.ndarray:
        return self._frames.color_intrinsics

    @property
    def depth_intrinsics(self) -> np.ndarray:
        return self._frames.depth_intrinsics

    @property
    def depth_shift(self) -> float:
        return self._frames.depth_shift

    @property
    def color_size(self) -> tuple[int, int]:
        return self._frames.color_size

    @property
    def depth_size(self) -> tuple[int, int]:
        return self._frames.depth_size

    def valid_frame_mask(self) -> np.ndarray:
        """bool [N]: frames whose stored pose is entirely finite."""
        return np.isfinite(self._frames.poses).all(axis=(1, 2))

    def poses(self) -> np.ndarray:
        """Aligned camera-to-world poses float64 [N,4,4]; invalid frames stay non-finite."""
        poses = self._frames.poses
        with np.errstate(invalid="ignore"):
            aligned = np.einsum("ij,njk->nik", self.axis_alignment, poses)
        aligned[~self.valid_frame_mask()] = -np.inf
        return aligned

    def read_frames(self, indices) -> list[Frame]:
        """Decode only the requested frames; an index with a non-finite pose is refused."""
        indices = [int(i) for i in indices]
        valid = self.valid_frame_mask()
        for index in indices:
            if not 0 <= index < self.num_frames:
                raise SceneInputError(self.scene_id, self._frame_file(), f"frame {index} out of range")
            if not valid[index]:
                raise SceneInputError(self.scene_id, self._frame_file(), f"frame {index} has a non-finite pose")
        poses = self.poses()
        return [Frame(i, rgb, depth, poses[i]) for i, rgb, depth in self._frames.read(indices)]

    def _frame_file(self) -> Path:
        return self.files["sens"] if self.source == "sens" else self.dir / "pose"

    @cached_property
    def _raw_mesh(self) -> Mesh:
        return read_mesh_ply(self.files["mesh"], self.scene_id)

    def mesh(self) -> Mesh:
        """The ``_vh_clean_2`` mesh in the aligned frame."""
        raw = self._raw_mesh
        a = self.axis_alignment
        aligned = raw.vertices.astype(np.float64) @ a[:3, :3].T + a[:3, 3]
        return Mesh(aligned.astype(np.float32), raw.colors, raw.faces)

    @cached_property
    def _groups(self) -> list[SegGroup]:
        return read_aggregation(self.files["aggregation"], self.scene_id)

    @cached_property
    def _object_ids(self) -> np.ndarray:
        segs = read_segs(self.files["segs"], self.scene_id)
        if len(segs) != len(self._raw_mesh.vertices):
            raise SceneInputError(self.scene_id, self.files["segs"],
                                  f"{len(segs)} segIndices for {len(self._raw_mesh.vertices)} mesh vertices")  # fmt: skip
        try:
            return vertex_object_ids(segs, self._groups)
        except ValueError as exc:
            raise SceneInputError(self.scene_id, self.files["aggregation"], str(exc)) from exc

    def object_ids(self) -> np.ndarray:
        """ScanNet objectId of every mesh vertex (int32 [V], -1 = unannotated)."""
        return self._object_ids

    def objects(self) -> list[dict[str, Any]]:
        """Every aggregation object: ``object_id``, ``label``, ``num_vertices``, aligned ``box`` (centre + size)."""
        ids = self.object_ids()
        vertices = self.mesh().vertices
        labels = read_label_map(self.label_map_path) if self.label_map_path else {}
        out = []
        for group in self._groups:
            points = vertices[ids == group.object_id]
            box = (np.concatenate([(points.min(0) + points.max(0)) / 2, points.max(0) - points.min(0)])
                   if len(points) else np.zeros(6))  # fmt: skip
            row = {"object_id": group.object_id, "label": group.label, "num_vertices": int(len(points)),
                   "box": [round(float(v), 6) for v in box]}  # fmt: skip
            if group.label in labels:
                row["nyu40id"] = labels[group.label].nyu40id
            out.append(row)
        return out

    def summary(self, max_invalid_listed: int = 50) -> dict[str, Any]:
        """The ``gpt4scene inspect`` JSON: frames, cameras, alignment, mesh, objects, labels and aligned bounds."""
        valid = self.valid_frame_mask()
        mesh = self.mesh()
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
    """Open a ScanNet scene folder; the folder name is the scene id and is validated first."""
    return ScanNetScene(scene_dir, label_map)


def check_scene_dir(scene_dir: str | Path) -> list[str]:
    """Why a folder cannot be used as a scene (empty when it can). Cheap: names and file presence only."""
    scene_dir = Path(scene_dir)
    name = scene_dir.name
    if not SCENE_ID_PATTERN.fullmatch(name):
        return [f"invalid scene id {name!r}: must match {SCENE_ID_PATTERN.pattern}"]
    files = scene_files(scene_dir, name)
    problems = [f"missing {path.name}" for key, path in files.items() if key != "sens" and not path.is_file()]
    if not files["sens"].is_file() and not (scene_dir / "pose").is_dir():
        problems.append(f"missing {files['sens'].name} (and no exported pose/ folder)")
    return problems
