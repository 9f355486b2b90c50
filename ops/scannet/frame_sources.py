"""Where a scene's RGB-D frames come from: its ``.sens`` file or SensReader's exported folder.

Both sources answer the same questions (raw poses, intrinsics, image sizes, depth shift) and decode one frame at a
time (the ``FrameSource`` protocol; ``ops.capture.readers.NerfstudioFrames`` is a third). ``PosedFrames`` is the
camera and frame side that ``ops.scannet.scene.ScanNetScene`` and ``ops.capture.readers.Capture`` share: one source,
its poses mapped by one 4x4 into the frame the pipeline works in (the axis alignment, or a capture's floor alignment).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from PIL import Image

from ops.core.errors import SceneInputError
from ops.core.textfile import regular_file
from ops.scannet.sens import SensReader

EXPORTED_DEPTH_SHIFT = 1000.0  # SensReader's export writes depth PNGs in millimetres
RIGID_DET_TOLERANCE = 0.01  # |det(R) - 1| of a valid pose; ScanNet's float32 rotations are within 1e-6


@dataclass
class Frame:
    """One RGB-D frame: ``index`` in the scene, ``rgb`` uint8 [H,W,3] (None when read without colour), ``depth``
    uint16 [h,w], aligned 4x4 pose."""

    index: int
    rgb: np.ndarray | None
    depth: np.ndarray
    pose: np.ndarray


class FrameSource(Protocol):
    """What a frame source answers: raw camera-to-world poses [N,4,4] (OpenCV camera axes), cameras, and one
    decoded frame at a time."""

    raw_poses: np.ndarray
    color_intrinsics: np.ndarray
    depth_intrinsics: np.ndarray
    depth_shift: float
    color_size: tuple[int, int]
    depth_size: tuple[int, int]

    def frame_file(self, index: int) -> Path: ...

    def decode(self, index: int, colour: bool = True) -> tuple[np.ndarray | None, np.ndarray]: ...

    def close(self) -> None: ...


def _read_matrix_txt(path: Path, scene_id: str, shape: tuple[int, int]) -> np.ndarray:
    """A whitespace-separated numeric matrix (``inf``/``nan`` allowed) of exactly ``shape``."""
    regular_file(path, scene_id, "matrix file")
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except OSError as exc:
        raise SceneInputError(scene_id, path, f"cannot read: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise SceneInputError(scene_id, path, f"not a numeric matrix ({exc})") from exc
    if values.shape != shape:
        raise SceneInputError(scene_id, path, f"expected a {shape[0]}x{shape[1]} matrix, got {values.shape}")
    return values


def checked_intrinsics(matrix: np.ndarray, scene_id: str, path: Path, what: str) -> np.ndarray:
    """``matrix`` (3x3 pinhole intrinsics, pixels) if it can project: finite, positive focal lengths, ``K[2,2]``
    non-zero; else ``SceneInputError`` naming ``path`` (NaN or zero intrinsics would leave every frame unmarked)."""
    if not np.isfinite(matrix).all():
        raise SceneInputError(scene_id, path, f"{what} intrinsics are not finite: {matrix.tolist()}")
    if matrix[0, 0] <= 0 or matrix[1, 1] <= 0 or matrix[2, 2] == 0:
        focal = f"focal lengths {matrix[0, 0]}, {matrix[1, 1]}; K[2,2] {matrix[2, 2]}"
        raise SceneInputError(scene_id, path, f"{what} intrinsics are singular ({focal})")
    return matrix


class SensFrames:
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

    @cached_property
    def color_intrinsics(self) -> np.ndarray:
        matrix = self.reader.header.intrinsic_color[:3, :3].astype(np.float64)
        return checked_intrinsics(matrix, self.scene_id, self.path, "colour")

    @cached_property
    def depth_intrinsics(self) -> np.ndarray:
        matrix = self.reader.header.intrinsic_depth[:3, :3].astype(np.float64)
        return checked_intrinsics(matrix, self.scene_id, self.path, "depth")

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


class ExportedFrames:
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
        try:
            names = os.listdir(pose_dir)
        except OSError as exc:
            raise SceneInputError(self.scene_id, pose_dir, f"cannot list the poses: {exc.strerror or exc}") from exc
        stems = [name[:-4] for name in names if name.endswith(".txt")]
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
        path = self.dir / "intrinsic" / "intrinsic_depth.txt"
        return checked_intrinsics(_read_matrix_txt(path, self.scene_id, (4, 4))[:3, :3], self.scene_id, path, "depth")

    @cached_property
    def color_intrinsics(self) -> np.ndarray:
        path = self.dir / "intrinsic" / "intrinsic_color.txt"
        if path.is_file():
            matrix = _read_matrix_txt(path, self.scene_id, (4, 4))[:3, :3]
            return checked_intrinsics(matrix, self.scene_id, path, "colour")
        if self.color_size != self.depth_size:
            raise SceneInputError(self.scene_id, path, "missing, and the colour images are not at the depth size")
        return self.depth_intrinsics

    def _image_size(self, path: Path) -> tuple[int, int]:
        regular_file(path, self.scene_id, "image")
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
        regular_file(depth_path, self.scene_id, "depth image")  # imread would block on a FIFO
        depth = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED)
        if depth is None or depth.dtype != np.uint16 or depth.ndim != 2:
            raise SceneInputError(self.scene_id, depth_path, "depth image missing or not 16-bit single-channel")
        if (depth.shape[1], depth.shape[0]) != self.depth_size:
            raise SceneInputError(self.scene_id, depth_path, f"depth image is not {self.depth_size} like frame 0")
        return rgb, depth

    def _decode_colour(self, index: int) -> np.ndarray:
        color_path = self.dir / "color" / f"{self.stems[index]}.jpg"
        regular_file(color_path, self.scene_id, "colour image")
        rgb = cv2.imread(str(color_path), cv2.IMREAD_COLOR_RGB)
        if rgb is None:
            raise SceneInputError(self.scene_id, color_path, "colour image missing or does not decode")
        if (rgb.shape[1], rgb.shape[0]) != self.color_size:
            raise SceneInputError(self.scene_id, color_path, f"colour image is not {self.color_size} like frame 0")
        return rgb

    def close(self) -> None:
        pass


class PosedFrames:
    """The camera and frame side of a scan or capture: ``_frames`` (a ``FrameSource``) with its raw poses mapped by
    ``pose_alignment`` (4x4, world → the pipeline's frame). Subclasses set ``scene_id`` and ``_frames`` and name
    ``frames_path``.

    A frame is valid when its stored pose is entirely finite and rigid (rotation determinant 1), so an all-zero or
    otherwise singular pose is invalid like ScanNet's ``-inf`` marker."""

    scene_id: str
    _frames: FrameSource

    @property
    def pose_alignment(self) -> np.ndarray:
        """4x4 float64 applied to every raw camera-to-world pose."""
        raise NotImplementedError

    @property
    def frames_path(self) -> Path:
        """Where the frames come from (named in errors)."""
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the frame source (a ``.sens`` file) if it was opened."""
        self._frames.close()

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
        return float(self._frames.depth_shift)

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
        poses = self._frames.raw_poses
        finite = np.isfinite(poses).all(axis=(1, 2))
        rigid = np.zeros_like(finite)
        rigid[finite] = np.abs(np.linalg.det(poses[finite, :3, :3]) - 1.0) < RIGID_DET_TOLERANCE
        return finite & rigid

    @cached_property
    def _aligned_poses(self) -> np.ndarray:
        aligned = np.full((self.num_frames, 4, 4), -np.inf)
        aligned[self._valid] = np.einsum("ij,njk->nik", self.pose_alignment, self._frames.raw_poses[self._valid])
        return aligned

    def valid_frame_mask(self) -> np.ndarray:
        """bool [N]: frames whose stored pose is finite and rigid (class docstring)."""
        return self._valid.copy()

    def poses(self) -> np.ndarray:
        """Aligned camera-to-world poses float64 [N,4,4] (``pose_alignment @ pose``); invalid frames are ``-inf``."""
        return self._aligned_poses.copy()

    def read_frames(self, indices: Iterable[int], colour: bool = True) -> list[Frame]:
        """Decode only the requested frames; an out-of-range index or an invalid pose is refused.

        With ``colour=False`` only the depth is decoded and ``Frame.rgb`` is None (depth tests need no colour)."""
        indices = [int(i) for i in indices]
        valid = self._valid
        for index in indices:
            if not 0 <= index < self.num_frames:
                raise SceneInputError(
                    self.scene_id, self.frames_path, f"frame {index} out of range (0..{self.num_frames - 1})"
                )
            if not valid[index]:
                raise SceneInputError(
                    self.scene_id,
                    self._frames.frame_file(index),
                    f"frame {index} has a non-finite pose (invalid frame)",
                )
        poses = self._aligned_poses
        return [Frame(index, *self._frames.decode(index, colour), poses[index].copy()) for index in indices]
