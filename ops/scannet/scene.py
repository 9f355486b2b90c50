"""A ScanNet v2 scene folder: its file set, the scene (mesh, objects and RGB-D frames) and the folder check.

Geometry leaving ``ScanNetScene`` is in ScanNet's axis-aligned frame (``A = axisAlignment`` of ``<scene>.txt``,
identity when absent as on test scans): vertices ``A @ [x,y,z,1]``, camera-to-world poses ``A @ pose``. Units are
metres, +Z up; depth images stay uint16 in ``1/depth_shift`` metres (millimetres for ScanNet).

The files are read by ``ops.scannet.ply`` (the mesh), ``ops.scannet.annotations`` (segments, aggregation,
``<scene>.txt``, label map) and ``ops.scannet.frame_sources`` (the ``.sens`` or exported frames). Opening a scene
reads only ``<scene>.txt``: the ``.sens`` is indexed (frame headers only) the first time frames, poses or cameras
are asked for, the mesh when ``mesh()``/``objects()``/``summary()`` need it, and a frame is decoded only by
``read_frames``.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ops.core.errors import SceneInputError
from ops.core.grouping import run_bounds, runs_by_key
from ops.scannet.annotations import (
    LabelRow,
    SegGroup,
    read_aggregation,
    read_label_map,
    read_scene_meta,
    read_segs,
    vertex_object_ids,
)
from ops.scannet.frame_sources import ExportedFrames, PosedFrames, SensFrames
from ops.scannet.ply import Mesh, read_mesh_ply
from ops.scannet.scene_id import SCENE_ID_PATTERN, validate_scene_id

MAX_INVALID_LISTED = 50


@dataclass(frozen=True)
class SceneFiles:
    """The ScanNet files of one scene folder; ``poses`` is the exported frames' ``pose/`` folder."""

    sens: Path
    mesh: Path
    segs: Path
    aggregation: Path
    meta: Path
    poses: Path


def scene_files(scene_dir: Path, scene_id: str) -> SceneFiles:
    """The ScanNet file names of one scene folder (``scene_id`` already validated)."""
    return SceneFiles(
        sens=scene_dir / f"{scene_id}.sens",
        mesh=scene_dir / f"{scene_id}_vh_clean_2.ply",
        segs=scene_dir / f"{scene_id}_vh_clean_2.0.010000.segs.json",
        aggregation=scene_dir / f"{scene_id}.aggregation.json",
        meta=scene_dir / f"{scene_id}.txt",
        poses=scene_dir / "pose",
    )


class ScanNetScene(PosedFrames):
    """One ScanNet scene folder (``.sens`` or exported frames). Opening reads ``<scene>.txt`` only.

    Holds the ``.sens`` open once frames were read: use it as a context manager or call ``close()``.
    """

    def __init__(self, scene_dir: str | Path, label_map: str | Path | None = None):
        self.dir = Path(scene_dir)
        self.scene_id = validate_scene_id(self.dir.name)
        self.files = scene_files(self.dir, self.scene_id)
        self.label_map_path = Path(label_map) if label_map is not None else None
        self.meta = read_scene_meta(self.files.meta, self.scene_id)
        self._frames: SensFrames | ExportedFrames
        if self.files.sens.is_file():
            self.source = "sens"
            self._frames = SensFrames(self.files.sens, self.scene_id)
        elif self.files.poses.is_dir():
            self.source = "exported"
            self._frames = ExportedFrames(self.dir, self.scene_id)
        else:
            raise SceneInputError(self.scene_id, self.files.sens, "missing, and no exported pose/ folder either")

    # -- cameras and frames (``PosedFrames``) ---------------------------------------------------------------
    @property
    def axis_alignment(self) -> np.ndarray:
        """4x4 float64 ``axisAlignment`` (identity when ``<scene>.txt`` has none)."""
        return self.meta.axis_alignment

    @property
    def pose_alignment(self) -> np.ndarray:
        return self.meta.axis_alignment

    @property
    def frames_path(self) -> Path:
        """Where the frames come from: the ``.sens`` file, or the exported ``pose/`` folder."""
        return self.files.sens if self.source == "sens" else self.files.poses

    # -- mesh and objects ------------------------------------------------------------------------------------
    @cached_property
    def _mesh(self) -> Mesh:
        raw = read_mesh_ply(self.files.mesh, self.scene_id)
        a = self.axis_alignment
        with np.errstate(over="ignore", invalid="ignore"):
            aligned = (raw.vertices.astype(np.float64) @ a[:3, :3].T + a[:3, 3]).astype(np.float32)
        if not np.isfinite(aligned).all():
            where = f"{self.files.mesh.name} aligned by axisAlignment of {self.files.meta.name}"
            raise SceneInputError(self.scene_id, self.files.mesh, f"non-finite vertices ({where})")
        return Mesh(aligned, raw.colors, raw.faces)

    def mesh(self) -> Mesh:
        """The ``_vh_clean_2`` mesh with aligned vertices (a fresh copy each call)."""
        mesh = self._mesh
        return Mesh(mesh.vertices.copy(), mesh.colors.copy(), mesh.faces.copy())

    @cached_property
    def _groups(self) -> list[SegGroup]:
        return read_aggregation(self.files.aggregation, self.scene_id)

    @cached_property
    def _object_ids(self) -> np.ndarray:
        segs = read_segs(self.files.segs, self.scene_id)
        num_vertices = len(self._mesh.vertices)
        if len(segs) != num_vertices:
            raise SceneInputError(
                self.scene_id, self.files.segs, f"{len(segs)} segIndices for {num_vertices} mesh vertices"
            )
        groups = self._groups  # outside the try: its SceneInputError already names the aggregation file
        try:
            return vertex_object_ids(segs, groups)
        except ValueError as exc:
            raise SceneInputError(self.scene_id, self.files.aggregation, str(exc)) from exc

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


@dataclass
class Discovery:
    """Valid scene ids (sorted) and invalid folders with their reasons."""

    valid: list[str] = field(default_factory=list)
    invalid: dict[str, list[str]] = field(default_factory=dict)


def discover_scenes(scans_dir: Path) -> Discovery:
    """Validate every folder under ``scans_dir`` (hidden entries and plain files are ignored). A dangling or looping
    symlink, or a folder that cannot be read, is reported as invalid with the reason, never skipped silently."""
    found = Discovery()
    try:
        entries = sorted(os.scandir(scans_dir), key=lambda entry: entry.name)
    except FileNotFoundError:
        return found
    except OSError as exc:
        found.invalid[str(scans_dir)] = [f"{scans_dir}: cannot list the scans folder: {exc.strerror or exc}"]
        return found
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            broken = _broken_link(Path(entry.path))
            if broken:
                found.invalid[entry.name] = [broken]
                continue
        if not entry.is_dir():
            continue
        problems = check_scene_dir(entry.path)
        if problems:
            found.invalid[entry.name] = problems
        else:
            found.valid.append(entry.name)
    return found


def _broken_link(path: Path) -> str | None:
    """Why the symlink ``path`` leads nowhere (dangling or a loop), or None if it resolves."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return f"{path}: dangling symlink to {os.readlink(path)}"
    except OSError as exc:
        reason = "a symlink loop" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        return f"{path}: {reason}"
    return None


def check_scene_dir(scene_dir: str | Path) -> list[str]:
    """Why a folder cannot be used as a scene (empty when it can), each problem naming its file.

    Cheap: the folder name, and presence and non-zero size of files; nothing is opened or decoded. A folder that
    cannot be read is one problem naming it, not an exception.
    """
    scene_dir = Path(scene_dir)
    name = scene_dir.name
    if not SCENE_ID_PATTERN.fullmatch(name):
        return [f"{scene_dir}: invalid scene id {name!r}: must match {SCENE_ID_PATTERN.pattern}"]
    try:
        return _scene_dir_problems(scene_dir, name)
    except OSError as exc:
        return [f"{scene_dir}: cannot read the scene folder: {exc.strerror or exc}"]


def _scene_dir_problems(scene_dir: Path, name: str) -> list[str]:
    if not scene_dir.is_dir():
        return [f"{scene_dir}: not a folder"]
    os.listdir(scene_dir)  # an unreadable folder raises here, named by check_scene_dir
    files = scene_files(scene_dir, name)
    problems = []
    for path in (files.mesh, files.segs, files.aggregation, files.meta, files.sens):
        if path.is_file() and path.stat().st_size == 0:
            problems.append(f"empty {path.name}")
        elif path != files.sens and not path.is_file():
            problems.append(f"missing {path.name}")
    if not files.sens.is_file():
        exported = ["color/", "depth/", "pose/", "intrinsic/intrinsic_depth.txt"]
        absent = [part for part in exported if not (scene_dir / part).exists()]
        if len(absent) == len(exported):
            problems.append(f"missing {files.sens.name} (and no exported color/ depth/ pose/ intrinsic/)")
        else:
            problems += [f"missing {part} (exported frames; no {files.sens.name})" for part in absent]
    return problems
