"""``ops.scannet.sens``: the reader against a ``.sens`` packed by hand from the published v4 layout, the writer against
the same bytes, and every kind of damaged file (truncation, wrong version, absurd counts, corrupt payloads)."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest
from fixtures_scannet import (
    COLOR_SIZE,
    DEPTH_SHIFT,
    DEPTH_SIZE,
    EXTRINSIC_COLOR,
    EXTRINSIC_DEPTH,
    INTRINSIC_COLOR,
    INTRINSIC_DEPTH,
    NUM_FRAMES,
    POSES,
    SCENE_ID,
    SENSOR_NAME,
    TIMESTAMPS,
    VALID,
    assemble_sens,
    frame_depth,
    frame_rgb,
    jpeg_bytes,
    zlib_depth_bytes,
)

from ops.core.errors import SceneInputError
from ops.scannet.sens import SensFrame, SensHeader, SensReader, encode_color, encode_depth, write_sens


def write(tmp_path, data: bytes):
    path = tmp_path / f"{SCENE_ID}.sens"
    path.write_bytes(data)
    return path


def assert_names_scene_and_file(error: pytest.ExceptionInfo, path) -> None:
    message = str(error.value)
    assert SCENE_ID in message and str(path) in message, message
    assert error.value.scene_id == SCENE_ID and error.value.path == str(path)


def test_hand_assembled_file_reads_back_exactly(tmp_path):
    path = write(tmp_path, assemble_sens().data)
    with SensReader(path, SCENE_ID) as reader:
        header = reader.header
        assert (header.version, header.sensor_name) == (4, SENSOR_NAME.decode())
        assert (header.color_width, header.color_height) == COLOR_SIZE
        assert (header.depth_width, header.depth_height) == DEPTH_SIZE
        assert (header.color_compression, header.depth_compression) == (2, 1)
        assert header.depth_shift == DEPTH_SHIFT and header.num_frames == reader.num_frames == NUM_FRAMES
        np.testing.assert_array_equal(header.intrinsic_color, INTRINSIC_COLOR)
        np.testing.assert_array_equal(header.extrinsic_color, EXTRINSIC_COLOR)
        np.testing.assert_array_equal(header.intrinsic_depth, INTRINSIC_DEPTH)
        np.testing.assert_array_equal(header.extrinsic_depth, EXTRINSIC_DEPTH)
        np.testing.assert_array_equal(reader.poses(), POSES)  # -inf and NaN kept as stored
        np.testing.assert_array_equal(reader.valid_frame_mask(), VALID)
        for index in range(NUM_FRAMES):
            raw = reader.read_raw(index)
            assert (raw.timestamp_color, raw.timestamp_depth) == TIMESTAMPS[index]
            assert raw.color_bytes == jpeg_bytes(index) and raw.depth_bytes == zlib_depth_bytes(index)
            np.testing.assert_array_equal(reader.read_depth(index), frame_depth(index))
            rgb = reader.read_color(index)
            assert rgb.dtype == np.uint8 and rgb.shape == (COLOR_SIZE[1], COLOR_SIZE[0], 3)
            error = np.abs(rgb.astype(int) - frame_rgb(index))
            assert error.max() <= 12 and error.mean() < 2, (error.max(), error.mean())  # JPEG q95 of a smooth image
        ((rgb, depth, pose),) = reader.read_frames([4])
        np.testing.assert_array_equal(rgb, reader.read_color(4))
        np.testing.assert_array_equal(depth, frame_depth(4))
        np.testing.assert_array_equal(pose, POSES[4])


def test_writer_produces_the_published_layout_byte_for_byte(tmp_path):
    header = SensHeader(
        *COLOR_SIZE,
        *DEPTH_SIZE,
        INTRINSIC_COLOR,
        INTRINSIC_DEPTH,
        EXTRINSIC_COLOR,
        EXTRINSIC_DEPTH,
        sensor_name=SENSOR_NAME.decode(),
        num_frames=NUM_FRAMES,
    )
    frames = [SensFrame(POSES[i], jpeg_bytes(i), zlib_depth_bytes(i), *TIMESTAMPS[i]) for i in range(NUM_FRAMES)]
    assert write_sens(tmp_path / "w.sens", header, frames) == NUM_FRAMES
    assert (tmp_path / "w.sens").read_bytes() == assemble_sens().data


def test_writer_reader_round_trip_is_exact_for_depth_and_poses(tmp_path):
    rng = np.random.default_rng(7)
    n, (w, h) = 6, (40, 30)
    poses = rng.normal(size=(n, 4, 4)).astype(np.float32)
    poses[1] = -np.inf  # ScanNet's invalid marker
    poses[4, 2, 3] = np.nan
    depths = rng.integers(0, 65536, size=(n, h, w), dtype=np.uint16)
    header = SensHeader(w, h, w, h, np.eye(4), np.eye(4), num_frames=n, depth_shift=1000.0)
    frames = [
        SensFrame(poses[i], encode_color(np.full((h, w, 3), 20 * i, np.uint8)), encode_depth(depths[i]))
        for i in range(n)
    ]
    write_sens(tmp_path / "r.sens", header, frames)
    with SensReader(tmp_path / "r.sens") as reader:
        np.testing.assert_array_equal(reader.poses(), poses)
        np.testing.assert_array_equal(reader.valid_frame_mask(), [True, False, True, True, False, True])
        for i in range(n):
            np.testing.assert_array_equal(reader.read_depth(i), depths[i])
            assert np.abs(reader.read_color(i).astype(int) - 20 * i).max() <= 1


def test_writer_refuses_a_frame_count_that_differs_from_the_header(tmp_path):
    header = SensHeader(4, 4, 4, 4, np.eye(4), np.eye(4), num_frames=2)
    frame = SensFrame(np.eye(4), encode_color(np.zeros((4, 4, 3), np.uint8)), encode_depth(np.zeros((4, 4), np.uint16)))
    with pytest.raises(ValueError, match="header says 2 frames, 1 were written"):
        write_sens(tmp_path / "x.sens", header, [frame])
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def _cut_points() -> dict[str, int]:
    sens = assemble_sens()
    return {
        "empty file": 0,
        "in the version": 2,
        "in the sensor name length": 9,
        "in the header matrices": 100,
        "in the frame count": sens.header_size - 3,
        "after the header": sens.header_size,
        "in the first frame header": sens.frame_starts[0] + 50,
        "in a colour payload": sens.frame_starts[1] + 96 + 10,
        "at a frame boundary": sens.frame_starts[3],
        "in the last depth payload": len(sens.data) - 1,
    }


@pytest.mark.parametrize("where", list(_cut_points()))
def test_truncated_file_is_refused_naming_scene_and_file(tmp_path, where):
    path = write(tmp_path, assemble_sens().data[: _cut_points()[where]])
    with pytest.raises(SceneInputError, match="truncated") as error:
        SensReader(path, SCENE_ID)
    assert_names_scene_and_file(error, path)


@pytest.mark.parametrize("version", [3, 5, 0x04000000])
def test_wrong_version_is_refused(tmp_path, version):
    path = write(tmp_path, assemble_sens(version=version).data)
    with pytest.raises(SceneInputError, match=f"unsupported .sens version {version}") as error:
        SensReader(path, SCENE_ID)
    assert_names_scene_and_file(error, path)


@pytest.mark.parametrize("count", [2**40, 2**64 - 1, NUM_FRAMES + 1])
def test_absurd_frame_count_fails_fast(tmp_path, count):
    path = write(tmp_path, assemble_sens(num_frames=count).data)
    started = time.perf_counter()
    with pytest.raises(SceneInputError, match=f"claims {count} frames") as error:
        SensReader(path, SCENE_ID)
    assert time.perf_counter() - started < 1.0  # rejected before any per-frame work or allocation
    assert_names_scene_and_file(error, path)


def test_absurd_sensor_name_length_is_refused(tmp_path):
    data = bytearray(assemble_sens().data)
    data[4:12] = struct.pack("<Q", 2**40)
    path = write(tmp_path, bytes(data))
    with pytest.raises(SceneInputError, match="sensor name length") as error:
        SensReader(path, SCENE_ID)
    assert_names_scene_and_file(error, path)


def test_frame_payload_sizes_past_the_end_are_refused(tmp_path):
    sens = assemble_sens()
    data = bytearray(sens.data)
    data[sens.frame_starts[2] + 80 : sens.frame_starts[2] + 88] = struct.pack("<Q", 2**50)  # colour size of frame 2
    path = write(tmp_path, bytes(data))
    with pytest.raises(SceneInputError, match="frame 2 of 5 runs past the end") as error:
        SensReader(path, SCENE_ID)
    assert_names_scene_and_file(error, path)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"this is not zlib", "does not decompress"),
        (b"x\x9c" + b"\x00" * 20, "does not decompress"),
        (zlib_depth_bytes(0)[:-4], "does not decompress"),
        (encode_depth(np.zeros((3, 3), np.uint16)), "expected"),
    ],
)
def test_corrupt_depth_payload_is_refused_naming_the_frame(tmp_path, payload, reason):
    payloads = [zlib_depth_bytes(i) for i in range(NUM_FRAMES)]
    payloads[1] = payload
    path = write(tmp_path, assemble_sens(depth_payloads=payloads).data)
    with SensReader(path, SCENE_ID) as reader:  # the index does not look inside payloads
        np.testing.assert_array_equal(reader.read_depth(0), frame_depth(0))
        with pytest.raises(SceneInputError, match=f"frame 1: depth .*{reason}") as error:
            reader.read_depth(1)
        assert_names_scene_and_file(error, path)
        with pytest.raises(SceneInputError, match="frame 1"):
            reader.read_frames([0, 1])


def test_corrupt_colour_payload_is_refused_naming_the_frame(tmp_path):
    sens = assemble_sens()
    data = bytearray(sens.data)
    start = sens.frame_starts[3] + 96
    data[start : start + 4] = b"XXXX"  # the JPEG start-of-image marker
    path = write(tmp_path, bytes(data))
    with SensReader(path, SCENE_ID) as reader:
        with pytest.raises(SceneInputError, match="frame 3: colour image does not decode") as error:
            reader.read_color(3)
        assert_names_scene_and_file(error, path)


def test_colour_of_another_size_than_the_header_is_refused(tmp_path):
    header = SensHeader(8, 6, 4, 4, np.eye(4), np.eye(4), num_frames=1)
    frame = SensFrame(np.eye(4), encode_color(np.zeros((4, 4, 3), np.uint8)), encode_depth(np.zeros((4, 4), np.uint16)))
    write_sens(tmp_path / "x.sens", header, [frame])
    with SensReader(tmp_path / "x.sens", SCENE_ID) as reader:
        with pytest.raises(SceneInputError, match="colour image is 4x4, the header says 8x6"):
            reader.read_color(0)


@pytest.mark.parametrize("index", [-1, NUM_FRAMES])
def test_frame_index_out_of_range(tmp_path, index):
    path = write(tmp_path, assemble_sens().data)
    with SensReader(path, SCENE_ID) as reader:
        with pytest.raises(SceneInputError, match=f"frame {index} out of range") as error:
            reader.read_raw(index)
        assert_names_scene_and_file(error, path)


def test_missing_file_names_scene_and_file(tmp_path):
    path = tmp_path / f"{SCENE_ID}.sens"
    with pytest.raises(SceneInputError, match="cannot read .sens file: missing") as error:
        SensReader(path, SCENE_ID)
    assert_names_scene_and_file(error, path)
