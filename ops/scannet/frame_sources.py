"""Where a scene's RGB-D frames come from: its ``.sens`` file or SensReader's exported folder.

Both sources answer the same questions (raw poses, intrinsics, image sizes, depth shift) and decode one frame at a
time; ``ops.scannet.scene.ScanNetScene`` picks one and applies the axis alignment.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ops.core.errors import SceneInputError
from ops.core.textfile import regular_file
from ops.scannet.sens import SensReader

EXPORTED_DEPTH_SHIFT = 1000.0  # SensReader's export writes depth PNGs in millimetres


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
