"""A corpus of broken ScanNet scene folders, one defect each, built on the hand-packed scene of
``tests/fixtures_scannet.py`` (which prepares cleanly on its own)."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

from fixtures_scannet import assemble_sens, write_scene

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
}


def write_broken_scene(root: Path, kind: str) -> tuple[str, str]:
    """``root/<scene_id>/`` with the defect ``kind``; returns the scene id and the file name its error must name."""
    corrupt, file_hint = DEFECTS[kind]
    scene_id = f"bad_{kind}"
    corrupt(write_scene(root, "sens", scene_id))
    return scene_id, file_hint
