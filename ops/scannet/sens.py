"""ScanNet ``.sens`` v4 reader and writer.

Layout (little-endian), from ScanNet's SensorData.py:

header: version u32 (=4) | strlen u64 | sensor_name bytes | intrinsic_color 16xf32 | extrinsic_color 16xf32 |
        intrinsic_depth 16xf32 | extrinsic_depth 16xf32 | color_compression i32 | depth_compression i32 |
        color_width u32 | color_height u32 | depth_width u32 | depth_height u32 | depth_shift f32 | num_frames u64
frame:  camera_to_world 16xf32 (row-major 4x4) | timestamp_color u64 | timestamp_depth u64 |
        color_size u64 | depth_size u64 | color bytes (JPEG) | depth bytes (zlib of uint16 HxW, millimetres)

The reader walks the 96-byte frame headers once (seeking past the payloads) to index every frame, so a frame is
fetched with one seek and one read, without decoding the frames around it. Poses are returned as stored
(camera-to-world in ScanNet's *unaligned* frame); invalid poses are stored as -inf and stay that way here.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ops.core.atomic import atomic_open
from ops.core.errors import SceneInputError
from ops.core.textfile import regular_file

SENS_VERSION = 4
COLOR_COMPRESSION = {-1: "unknown", 0: "raw", 1: "png", 2: "jpeg"}
DEPTH_COMPRESSION = {-1: "unknown", 0: "raw_ushort", 1: "zlib_ushort", 2: "occi_ushort"}
_FRAME_HEADER = struct.Struct("<16fQQQQ")  # 96 bytes: pose, colour/depth timestamps, colour/depth payload sizes
_PAYLOAD_SIZES = struct.Struct("<QQ")
_FRAME_HEADER_DTYPE = np.dtype([("pose", "<f4", (16,)), ("timestamps", "<u8", (2,)), ("sizes", "<u8", (2,))])
_MAX_SENSOR_NAME = 4096
_MAX_IMAGE_SIDE = 16384


@dataclass
class SensHeader:
    """The ``.sens`` file header. Matrices are 4x4 float32; sizes are pixels; ``depth_shift`` units per metre."""

    color_width: int
    color_height: int
    depth_width: int
    depth_height: int
    intrinsic_color: np.ndarray
    intrinsic_depth: np.ndarray
    extrinsic_color: np.ndarray = field(default_factory=lambda: np.eye(4, dtype=np.float32))
    extrinsic_depth: np.ndarray = field(default_factory=lambda: np.eye(4, dtype=np.float32))
    sensor_name: str = "StructureSensor"
    color_compression: int = 2
    depth_compression: int = 1
    depth_shift: float = 1000.0
    num_frames: int = 0
    version: int = SENS_VERSION


@dataclass
class SensFrame:
    """One frame: camera-to-world pose (unaligned), timestamps, and the still-encoded colour and depth."""

    camera_to_world: np.ndarray
    color_bytes: bytes
    depth_bytes: bytes
    timestamp_color: int = 0
    timestamp_depth: int = 0


@dataclass(frozen=True)
class _FrameIndex:
    offset: int  # file offset of the colour payload
    color_size: int
    depth_size: int


class SensReader:
    """Random access to the frames of a ``.sens`` file. Errors name the file (and scene, if given)."""

    def __init__(self, path: str | Path, scene_id: str | None = None):
        self.path = Path(path)
        self.scene_id = scene_id
        regular_file(self.path, scene_id, ".sens file")  # a FIFO would block the open below
        try:
            self._file = open(self.path, "rb")
        except OSError as exc:
            raise self._error(f"cannot open: {exc.strerror or exc}") from exc
        try:
            self._file_size = os.fstat(self._file.fileno()).st_size
            self.header = self._read_header()
            self._poses, self._timestamps, self._index = self._index_frames()
        except BaseException:
            self._file.close()
            raise

    # -- context manager -------------------------------------------------------------------------------------
    def __enter__(self) -> SensReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    # -- public API ------------------------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return len(self._index)

    def poses(self) -> np.ndarray:
        """All camera-to-world poses, float32 [N,4,4], as stored (unaligned; -inf where invalid)."""
        return self._poses.copy()

    def valid_frame_mask(self) -> np.ndarray:
        """bool [N]: True where every pose entry is finite."""
        return np.isfinite(self._poses).all(axis=(1, 2))

    def read_raw(self, index: int) -> SensFrame:
        """The encoded frame ``index`` (one seek and one read)."""
        entry = self._entry(index)
        payload = os.pread(self._file.fileno(), entry.color_size + entry.depth_size, entry.offset)
        if len(payload) != entry.color_size + entry.depth_size:
            raise self._error(f"frame {index}: payload truncated")
        ts_color, ts_depth = self._timestamps[index]
        return SensFrame(
            camera_to_world=self._poses[index].copy(),
            color_bytes=payload[: entry.color_size],
            depth_bytes=payload[entry.color_size :],
            timestamp_color=int(ts_color),
            timestamp_depth=int(ts_depth),
        )

    def read_color(self, index: int) -> np.ndarray:
        """Colour of frame ``index`` as RGB uint8 [H,W,3]."""
        return self._decode(index, decode_color, self.read_raw(index).color_bytes)

    def read_depth(self, index: int) -> np.ndarray:
        """Depth of frame ``index`` as uint16 [H,W] in units of 1/depth_shift metres (mm for ScanNet)."""
        return self._decode(index, decode_depth, self.read_raw(index).depth_bytes)

    def read_frames(self, indices: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(rgb, depth, camera_to_world) for each index, decoding only those frames (one read per frame)."""
        out = []
        for index in indices:
            raw = self.read_raw(index)
            rgb = self._decode(index, decode_color, raw.color_bytes)
            out.append((rgb, self._decode(index, decode_depth, raw.depth_bytes), raw.camera_to_world))
        return out

    # -- parsing ---------------------------------------------------------------------------------------------
    def _error(self, reason: str) -> SceneInputError:
        return SceneInputError(self.scene_id, self.path, reason)

    def _decode(self, index: int, decoder: Callable[[bytes, SensHeader, str], np.ndarray], data: bytes) -> np.ndarray:
        try:
            return decoder(data, self.header, f"frame {index}")
        except ValueError as exc:  # a payload that does not decode is bad input of this scene and file
            raise self._error(str(exc)) from exc

    def _read_exact(self, n: int, what: str) -> bytes:
        data = self._file.read(n)
        if len(data) != n:
            raise self._error(f"truncated .sens: file ends inside {what}")
        return data

    def _read_header(self) -> SensHeader:
        (version,) = struct.unpack("<I", self._read_exact(4, "header version"))
        if version != SENS_VERSION:
            raise self._error(f"unsupported .sens version {version} (expected {SENS_VERSION})")
        (strlen,) = struct.unpack("<Q", self._read_exact(8, "header"))
        if strlen > _MAX_SENSOR_NAME:
            raise self._error(f"corrupt header: sensor name length {strlen}")
        name = self._read_exact(strlen, "sensor name").decode("utf-8", errors="replace")
        mats = np.frombuffer(self._read_exact(4 * 16 * 4, "header matrices"), dtype="<f4").reshape(4, 4, 4)
        color_comp, depth_comp = struct.unpack("<ii", self._read_exact(8, "header"))
        cw, ch, dw, dh = struct.unpack("<IIII", self._read_exact(16, "header"))
        (depth_shift,) = struct.unpack("<f", self._read_exact(4, "header"))
        (num_frames,) = struct.unpack("<Q", self._read_exact(8, "header"))
        if color_comp not in COLOR_COMPRESSION or depth_comp not in DEPTH_COMPRESSION:
            raise self._error(f"unknown compression types color={color_comp} depth={depth_comp}")
        if color_comp not in (1, 2) or depth_comp not in (0, 1):
            raise self._error(
                f"unsupported compression color={COLOR_COMPRESSION[color_comp]} depth={DEPTH_COMPRESSION[depth_comp]}"
            )
        if not all(0 < s <= _MAX_IMAGE_SIDE for s in (cw, ch, dw, dh)):
            raise self._error(f"implausible image sizes colour {cw}x{ch}, depth {dw}x{dh}")
        if not np.isfinite(depth_shift) or depth_shift <= 0:
            raise self._error(f"invalid depth_shift {depth_shift}")
        # Each frame needs at least its 96-byte header: reject absurd counts before walking the file.
        remaining = self._file_size - self._file.tell()
        if num_frames * _FRAME_HEADER.size > remaining:
            raise self._error(
                f"header claims {num_frames} frames but only {remaining} bytes follow (truncated or corrupt)"
            )
        return SensHeader(
            version=version,
            sensor_name=name,
            intrinsic_color=mats[0].astype(np.float32),
            extrinsic_color=mats[1].astype(np.float32),
            intrinsic_depth=mats[2].astype(np.float32),
            extrinsic_depth=mats[3].astype(np.float32),
            color_compression=color_comp,
            depth_compression=depth_comp,
            color_width=cw,
            color_height=ch,
            depth_width=dw,
            depth_height=dh,
            depth_shift=float(depth_shift),
            num_frames=num_frames,
        )

    def _index_frames(self) -> tuple[np.ndarray, np.ndarray, list[_FrameIndex]]:
        # One positioned read (pread) per frame header; the 96-byte headers are gathered and parsed with one
        # structured numpy view at the end instead of unpacking 20 fields per frame in Python.
        n = self.header.num_frames
        size = _FRAME_HEADER.size
        headers = bytearray(n * size)
        index: list[_FrameIndex] = []
        fd = self._file.fileno()
        offset = self._file.tell()
        for i in range(n):
            raw = os.pread(fd, size, offset)
            if len(raw) != size:
                raise self._error(f"truncated .sens: header claims {n} frames, file ends in frame {i}")
            headers[i * size : (i + 1) * size] = raw
            color_size, depth_size = _PAYLOAD_SIZES.unpack_from(raw, size - _PAYLOAD_SIZES.size)
            offset += size
            end = offset + color_size + depth_size
            if end > self._file_size:
                raise self._error(f"truncated .sens: frame {i} of {n} runs past the end of the file")
            index.append(_FrameIndex(offset, color_size, depth_size))
            offset = end
        table = np.frombuffer(bytes(headers), dtype=_FRAME_HEADER_DTYPE)
        return table["pose"].reshape(n, 4, 4).copy(), table["timestamps"].copy(), index

    def _entry(self, index: int) -> _FrameIndex:
        if not 0 <= index < len(self._index):
            raise self._error(f"frame {index} out of range (0..{len(self._index) - 1})")
        return self._index[index]


def decode_color(data: bytes, header: SensHeader, where: str = "") -> np.ndarray:
    """Decode a JPEG/PNG colour payload to RGB uint8 [color_height, color_width, 3]."""
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR_RGB)  # the codec writes RGB
    if image is None:
        raise ValueError(f"{where}: colour image does not decode")
    if image.shape[:2] != (header.color_height, header.color_width):
        raise ValueError(
            f"{where}: colour image is {image.shape[1]}x{image.shape[0]}, "
            f"the header says {header.color_width}x{header.color_height}"
        )
    return image


def decode_depth(data: bytes, header: SensHeader, where: str = "") -> np.ndarray:
    """Decode a zlib (or raw) uint16 depth payload to [depth_height, depth_width]."""
    if header.depth_compression == 1:
        try:
            data = zlib.decompress(data)
        except zlib.error as exc:
            raise ValueError(f"{where}: depth does not decompress ({exc})") from exc
    expected = header.depth_width * header.depth_height * 2
    if len(data) != expected:
        raise ValueError(f"{where}: depth has {len(data)} bytes, expected {expected}")
    return np.frombuffer(data, dtype="<u2").reshape(header.depth_height, header.depth_width).copy()


def encode_color(rgb: np.ndarray, quality: int = 90) -> bytes:
    """RGB uint8 [H,W,3] → JPEG bytes (deterministic for a given input and quality)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def encode_depth(depth: np.ndarray) -> bytes:
    """uint16 [H,W] depth → zlib bytes, as ScanNet stores it."""
    return zlib.compress(np.ascontiguousarray(depth, dtype="<u2").tobytes(), 1)


def write_sens(path: str | Path, header: SensHeader, frames: Iterable[SensFrame]) -> int:
    """Write a v4 ``.sens`` atomically. ``header.num_frames`` must equal the number of frames given."""
    count = 0
    with atomic_open(path) as handle:
        name = header.sensor_name.encode("utf-8")
        handle.write(struct.pack("<IQ", SENS_VERSION, len(name)))
        handle.write(name)
        for mat in (header.intrinsic_color, header.extrinsic_color, header.intrinsic_depth, header.extrinsic_depth):
            handle.write(np.asarray(mat, dtype="<f4").reshape(16).tobytes())
        handle.write(struct.pack("<ii", header.color_compression, header.depth_compression))
        handle.write(
            struct.pack("<IIII", header.color_width, header.color_height, header.depth_width, header.depth_height)
        )
        handle.write(struct.pack("<fQ", header.depth_shift, header.num_frames))
        for frame in frames:
            pose = np.asarray(frame.camera_to_world, dtype="<f4").reshape(16)
            handle.write(
                _FRAME_HEADER.pack(
                    *pose.tolist(),
                    frame.timestamp_color,
                    frame.timestamp_depth,
                    len(frame.color_bytes),
                    len(frame.depth_bytes),
                )
            )
            handle.write(frame.color_bytes)
            handle.write(frame.depth_bytes)
            count += 1
        if count != header.num_frames:
            raise ValueError(f"{path}: header says {header.num_frames} frames, {count} were written")
    return count
