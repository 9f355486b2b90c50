"""Capture folders: posed RGB-D frames in one of three layouts, read into one frame convention.

Layouts of ``<raw root>/captures/<name>/`` (``name`` validated like a scene ID):

- ``nerfstudio``: ``transforms.json`` as phone-capture apps export it (Record3D, Polycam, ...): one pinhole camera
  (``fl_x fl_y cx cy w h``, global or repeated per frame), ``frames[i].file_path`` (colour) and
  ``.depth_file_path`` (16-bit depth; ``depth_unit_scale_factor`` metres per unit, default 0.001) inside the folder,
  ``transform_matrix`` camera-to-world with **OpenGL/Nerfstudio camera axes (x right, y up, z back)**. Depth images
  may be smaller than the colour: their intrinsics are the colour ones scaled (pixel-centre convention).
- ``sens``: ``<name>.sens`` (or the folder's only ``.sens``), ScanNet's format: OpenCV axes, depth in mm.
- ``exported``: ScanNet's exported ``color/ depth/ pose/ intrinsic/`` folders: OpenCV axes, depth in mm.

Frames: every pose ``Capture`` hands out is camera-to-world with **OpenCV camera axes (x right, y down, z
forward)**, as ScanNet stores them: a Nerfstudio pose becomes ``c2w_gl @ diag(1, -1, -1, 1)``. The world frame is
the capture's own (any origin, any up axis) until ``with_alignment(A)`` is given the floor alignment
(``ops.capture.alignment``); then poses are ``A @ c2w``: metres, +Z up, floor at z = 0, like the scans' aligned
frame. A frame whose pose is not finite and rigid is invalid, as in ScanNet (``PosedFrames``).
"""

from __future__ import annotations

import json
import math
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ops.core.errors import SceneInputError
from ops.core.textfile import read_utf8_text
from ops.prompts.frames import scale_intrinsics
from ops.scannet.frame_sources import ExportedFrames, PosedFrames, SensFrames
from ops.scannet.scene_id import SCENE_ID_PATTERN, validate_scene_id

CAPTURE_LAYOUTS = ("nerfstudio", "sens", "exported")
TRANSFORMS_FILE = "transforms.json"
OPENCV_FROM_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])  # right-multiplied: flips the camera's y and z axes
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
_CAMERA_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h")


def opengl_to_opencv(camera_to_world: np.ndarray) -> np.ndarray:
    """Camera-to-world poses [...,4,4] with OpenGL camera axes (x right, y up, z back) → OpenCV axes (x right,
    y down, z forward); the camera centre and the world frame are unchanged."""
    return np.asarray(camera_to_world, dtype=np.float64) @ OPENCV_FROM_OPENGL


class NerfstudioFrames:
    """Frames of a Nerfstudio-style ``transforms.json`` (the module docstring), in the ``ExportedFrames`` API."""

    def __init__(self, capture_dir: Path, name: str):
        self.dir = capture_dir
        self.scene_id = name
        self.path = capture_dir / TRANSFORMS_FILE
        text = read_utf8_text(self.path, name, "transforms.json")
        try:
            self.meta = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SceneInputError(name, self.path, f"not valid JSON ({exc})") from exc
        frames = self.meta.get("frames") if isinstance(self.meta, dict) else None
        if not isinstance(frames, list) or not frames:
            raise SceneInputError(name, self.path, "needs a non-empty 'frames' list")
        self.frames = frames
        camera = [self._camera(frame) for frame in frames]
        if any(item != camera[0] for item in camera):
            raise SceneInputError(name, self.path, "frames have different intrinsics; one camera is supported")
        self.camera = camera[0]
        self.depth_shift = 1.0 / float(self.meta.get("depth_unit_scale_factor", 0.001))

    def _camera(self, frame: Any) -> tuple[float, ...]:
        if not isinstance(frame, dict):
            raise SceneInputError(self.scene_id, self.path, "every frame must be a JSON object")
        values = []
        for key in _CAMERA_KEYS:
            value = frame.get(key, self.meta.get(key))
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SceneInputError(self.scene_id, self.path, f"camera field {key!r} missing or not a number")
            values.append(float(value))
        for key in _DISTORTION_KEYS:
            if float(frame.get(key, self.meta.get(key, 0.0)) or 0.0) != 0.0:
                raise SceneInputError(self.scene_id, self.path, f"distortion {key} is not zero: undistort the images")
        return tuple(values)

    def _file(self, index: int, key: str) -> Path:
        relative = self.frames[index].get(key)
        if not isinstance(relative, str) or not relative:
            raise SceneInputError(self.scene_id, self.path, f"frame {index} has no {key!r}")
        path = (self.dir / relative).resolve()
        if not path.is_relative_to(self.dir.resolve()):
            raise SceneInputError(self.scene_id, self.path, f"frame {index}: {key} {relative!r} leaves the capture")
        return path

    def frame_file(self, index: int) -> Path:
        return self._file(index, "file_path")

    @cached_property
    def raw_poses(self) -> np.ndarray:
        poses = []
        for index, frame in enumerate(self.frames):
            try:
                matrix = np.asarray(frame.get("transform_matrix"), dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise SceneInputError(self.scene_id, self.path, f"frame {index}: bad transform_matrix") from exc
            if matrix.shape != (4, 4):
                raise SceneInputError(self.scene_id, self.path, f"frame {index}: transform_matrix is not 4x4")
            poses.append(opengl_to_opencv(matrix))
        return np.stack(poses)

    @property
    def color_size(self) -> tuple[int, int]:
        return (int(self.camera[4]), int(self.camera[5]))

    @property
    def color_intrinsics(self) -> np.ndarray:
        fx, fy, cx, cy = self.camera[:4]
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])

    @cached_property
    def depth_size(self) -> tuple[int, int]:
        path = self._file(0, "depth_file_path")
        try:
            with Image.open(path) as image:  # reads the header only
                return image.size
        except OSError as exc:
            raise SceneInputError(self.scene_id, path, f"not a readable image ({exc})") from exc

    @cached_property
    def depth_intrinsics(self) -> np.ndarray:
        (width, height), (depth_width, depth_height) = self.color_size, self.depth_size
        return scale_intrinsics(self.color_intrinsics, depth_width / width, depth_height / height)

    def decode(self, index: int, colour: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
        depth_path = self._file(index, "depth_file_path")
        depth = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED)
        if depth is None or depth.dtype != np.uint16 or depth.ndim != 2:
            raise SceneInputError(self.scene_id, depth_path, "depth image missing or not 16-bit single-channel")
        if (depth.shape[1], depth.shape[0]) != self.depth_size:
            raise SceneInputError(self.scene_id, depth_path, f"depth image is not {self.depth_size} like frame 0")
        if not colour:
            return None, depth
        color_path = self.frame_file(index)
        rgb = cv2.imread(str(color_path), cv2.IMREAD_COLOR_RGB)
        if rgb is None:
            raise SceneInputError(self.scene_id, color_path, "colour image missing or does not decode")
        if (rgb.shape[1], rgb.shape[0]) != self.color_size:
            raise SceneInputError(self.scene_id, color_path, f"colour image is not {self.color_size} (w, h)")
        return rgb, depth

    def close(self) -> None:
        pass


def _sens_file(capture_dir: Path, name: str) -> Path | None:
    named = capture_dir / f"{name}.sens"
    if named.is_file():
        return named
    found = sorted(capture_dir.glob("*.sens"))
    return found[0] if len(found) == 1 else None


def capture_layout(capture_dir: Path) -> str | None:
    """Which layout a folder holds (``transforms.json`` first, then a ``.sens``, then ``pose/``), else None."""
    if (capture_dir / TRANSFORMS_FILE).is_file():
        return "nerfstudio"
    if _sens_file(capture_dir, capture_dir.name) is not None:
        return "sens"
    if (capture_dir / "pose").is_dir():
        return "exported"
    return None


class Capture(PosedFrames):
    """One capture folder; poses are OpenCV camera-to-world in the capture's world, or aligned once
    ``with_alignment`` was given the floor alignment (module docstring). Frames are decoded one at a time."""

    def __init__(self, capture_dir: str | Path, aligned_from_world: np.ndarray | None = None):
        self.dir = Path(capture_dir)
        self.scene_id = validate_scene_id(self.dir.name)
        self.layout = capture_layout(self.dir)
        self._frames: NerfstudioFrames | SensFrames | ExportedFrames
        if self.layout == "nerfstudio":
            self._frames = NerfstudioFrames(self.dir, self.scene_id)
        elif self.layout == "sens":
            self._frames = SensFrames(_sens_file(self.dir, self.scene_id), self.scene_id)
        elif self.layout == "exported":
            self._frames = ExportedFrames(self.dir, self.scene_id)
        else:
            raise SceneInputError(self.scene_id, self.dir, "not a capture: no transforms.json, .sens or pose/")
        self.aligned_from_world = np.eye(4) if aligned_from_world is None else np.asarray(aligned_from_world)

    def with_alignment(self, aligned_from_world: np.ndarray) -> Capture:
        """The same capture whose poses are ``aligned_from_world @ c2w``."""
        return Capture(self.dir, aligned_from_world)

    @property
    def pose_alignment(self) -> np.ndarray:
        return self.aligned_from_world

    @property
    def frames_path(self) -> Path:
        """Where the frames come from (the transforms file, the ``.sens``, or ``pose/``)."""
        return self.dir / "pose" if isinstance(self._frames, ExportedFrames) else self._frames.path


def open_capture(capture_dir: str | Path) -> Capture:
    """Open a capture folder; its name is validated like a scene ID before any path is built."""
    return Capture(capture_dir)


def check_capture_dir(capture_dir: str | Path) -> list[str]:
    """Why a folder cannot be used as a capture (empty when it can). Cheap: names and files, nothing decoded."""
    capture_dir = Path(capture_dir)
    if not SCENE_ID_PATTERN.fullmatch(capture_dir.name):
        return [f"{capture_dir}: invalid capture name {capture_dir.name!r}: must match {SCENE_ID_PATTERN.pattern}"]
    if not capture_dir.is_dir():
        return [f"{capture_dir}: not a folder"]
    layout = capture_layout(capture_dir)
    if layout is None:
        return [f"{capture_dir}: no {TRANSFORMS_FILE}, no single .sens and no exported pose/ folder"]
    if layout == "exported":
        needed = ["color", "depth", "intrinsic/intrinsic_depth.txt"]
        return [f"missing {part} (exported frames)" for part in needed if not (capture_dir / part).exists()]
    return []


def discover_captures(captures_dir: Path) -> tuple[list[str], dict[str, list[str]]]:
    """``(valid capture names sorted, {invalid folder: problems})`` under ``captures_dir`` (hidden entries and
    plain files ignored; a missing folder has none)."""
    valid: list[str] = []
    invalid: dict[str, list[str]] = {}
    if not captures_dir.is_dir():
        return valid, invalid
    for entry in sorted(captures_dir.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        problems = check_capture_dir(entry)
        if problems:
            invalid[entry.name] = problems
        else:
            valid.append(entry.name)
    return valid, invalid
