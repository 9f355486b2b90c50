"""A corpus of broken ScanNet scene folders, one defect each, built on the hand-packed scene of
``tests/fixtures_scannet.py`` (which prepares cleanly on its own)."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

from fixtures_scannet import SCENE_TXT, SENSOR_NAME, assemble_sens, write_scene

SEGS = "_vh_clean_2.0.010000.segs.json"


def _sens(scene: Path) -> Path:
    return scene / f"{scene.name}.sens"


def _poses(scene: Path, value: float) -> None:
    """Every frame's camera-to-world pose set to ``value`` (ScanNet's invalid-frame marker is -inf)."""
    packed = assemble_sens()
    data = bytearray(packed.data)
    for start in packed.frame_starts:
        data[start : start + 64] = struct.pack("<16f", *[value] * 16)
    _sens(scene).write_bytes(bytes(data))


def _truncated_sens(scene: Path) -> None:
    packed = assemble_sens()
    _sens(scene).write_bytes(packed.data[: packed.frame_starts[2] + 40])  # inside frame 2's header


def _json(scene: Path, suffix: str, text_or_bytes) -> None:
    path = scene / f"{scene.name}{suffix}"
    path.write_bytes(text_or_bytes if isinstance(text_or_bytes, bytes) else text_or_bytes.encode())


def _aggregation(scene: Path, groups: list) -> None:
    doc = {
        "sceneId": f"scannet.{scene.name}",
        "appId": "Aggregator.v2",
        "segGroups": groups,
        "segmentsFile": f"scannet.{scene.name}_vh_clean_2.0.010000.segs.json",
    }
    _json(scene, ".aggregation.json", json.dumps(doc))


def _intrinsics(scene: Path, which: int, value: float) -> None:
    """The header's colour (``which`` 0) or depth (2) intrinsic matrix set to ``value`` everywhere."""
    data = bytearray(assemble_sens().data)
    start = 4 + 8 + len(SENSOR_NAME) + which * 64  # version, name length, name, then four 4x4 float32 matrices
    data[start : start + 64] = struct.pack("<16f", *[value] * 16)
    _sens(scene).write_bytes(bytes(data))


def _fifo(path: Path) -> None:
    """``path`` replaced by a named pipe nobody writes to: a plain open() of it blocks forever."""
    path.unlink()
    os.mkfifo(path)


def _swap(path: Path, make: Callable[[Path], None]) -> None:
    path.unlink()
    make(path)


def _meta(scene: Path, alignment: str) -> None:
    text = SCENE_TXT.replace("axisAlignment = 0 -1 0 1 1 0 0 2 0 0 1 3 0 0 0 1", f"axisAlignment = {alignment}")
    (scene / f"{scene.name}.txt").write_text(text)


PLY, AGG = "_vh_clean_2.ply", ".aggregation.json"

# kind -> (corruption, the file its error must name)
DEFECTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated_sens": (_truncated_sens, ".sens"),
    "wrong_sens_version": (lambda s: _sens(s).write_bytes(assemble_sens(version=5).data), ".sens"),
    "nan_poses": (lambda s: _poses(s, float("nan")), ".sens"),
    "minus_inf_poses": (lambda s: _poses(s, float("-inf")), ".sens"),
    "empty_depth": (lambda s: _sens(s).write_bytes(assemble_sens(depth_payloads=[b""] * 5).data), ".sens"),
    "absurd_frame_count": (lambda s: _sens(s).write_bytes(assemble_sens(num_frames=2**40).data), ".sens"),
    "missing_ply": (lambda s: (s / f"{s.name}_vh_clean_2.ply").unlink(), "_vh_clean_2.ply"),
    "missing_segs": (lambda s: (s / f"{s.name}{SEGS}").unlink(), SEGS),
    "missing_aggregation": (lambda s: (s / f"{s.name}.aggregation.json").unlink(), ".aggregation.json"),
    "object_of_missing_segments": (
        lambda s: _aggregation(s, [{"id": 0, "objectId": 0, "segments": [999], "label": "chair"}]),
        ".aggregation.json",
    ),
    "non_utf8_json": (lambda s: _json(s, SEGS, b'{"segIndices": "\xff\xfe\xfa"}'), SEGS),
    "malformed_json": (lambda s: _json(s, ".aggregation.json", '{"segGroups": [{"id": 0,'), ".aggregation.json"),
    "no_objects": (lambda s: _aggregation(s, []), ".aggregation.json"),
    # Files that are not regular files: opening them must not block or read without end.
    "fifo_sens": (lambda s: _fifo(_sens(s)), ".sens"),
    "fifo_ply": (lambda s: _fifo(s / f"{s.name}{PLY}"), PLY),
    "fifo_aggregation": (lambda s: _fifo(s / f"{s.name}{AGG}"), AGG),
    "ply_is_a_folder": (lambda s: _swap(s / f"{s.name}{PLY}", Path.mkdir), PLY),
    "segs_is_a_device": (lambda s: _swap(s / f"{s.name}{SEGS}", lambda p: p.symlink_to("/dev/zero")), SEGS),
    "dangling_ply_link": (lambda s: _swap(s / f"{s.name}{PLY}", lambda p: p.symlink_to(s / "absent.ply")), PLY),
    "looping_sens_link": (lambda s: _swap(_sens(s), lambda p: p.symlink_to(p)), ".sens"),
    # Bounded parsing.
    "deeply_nested_aggregation": (lambda s: _json(s, AGG, "[" * 200_000), AGG),
    "deeply_nested_segs": (lambda s: _json(s, SEGS, '{"segIndices": ' + "[" * 200_000), SEGS),
    "non_utf8_aggregation": (lambda s: _json(s, AGG, b'{"segGroups": "\xff\xfe"}'), AGG),
    # Geometry that cannot project or overflows.
    "nan_color_intrinsics": (lambda s: _intrinsics(s, 0, float("nan")), ".sens"),
    "zero_focal_depth_intrinsics": (lambda s: _intrinsics(s, 2, 0.0), ".sens"),
    "singular_poses": (lambda s: _poses(s, 0.0), ".sens"),
    "overflowing_axis_alignment": (lambda s: _meta(s, "1e300 0 0 0 0 1e300 0 0 0 0 1e300 0 0 0 0 1"), PLY),
    "nan_axis_alignment": (lambda s: _meta(s, "nan 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1"), ".txt"),
    "object_id_too_large": (
        lambda s: _aggregation(s, [{"id": 0, "objectId": 2**40, "segments": [0], "label": "chair"}]),
        AGG,
    ),
    "negative_segment": (
        lambda s: _aggregation(s, [{"id": 0, "objectId": 0, "segments": [-5], "label": "chair"}]),
        AGG,
    ),
    "segment_in_two_objects": (
        lambda s: _aggregation(
            s,
            [
                {"id": 0, "objectId": 0, "segments": [0], "label": "chair"},
                {"id": 1, "objectId": 1, "segments": [0], "label": "table"},
            ],
        ),
        AGG,
    ),
    "truncated_ply": (lambda s: (s / f"{s.name}{PLY}").write_bytes((s / f"{s.name}{PLY}").read_bytes()[:300]), PLY),
}


def write_broken_scene(root: Path, kind: str) -> tuple[str, str]:
    """``root/<scene_id>/`` with the defect ``kind``; returns the scene id and the file name its error must name."""
    corrupt, file_hint = DEFECTS[kind]
    scene_id = f"bad_{kind}"
    corrupt(write_scene(root, "sens", scene_id))
    return scene_id, file_hint
