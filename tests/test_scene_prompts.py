"""``ops.prompts.driver`` artifact checks fail when the artifacts are wrong, not only pass when they are right."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ops.core.layout import SceneLayout
from ops.prompts.driver import (
    PromptSettings,
    check_bev_not_blank,
    check_frames_distinct,
    check_markers_complete,
    largest_first,
    prepare_scene,
)
from ops.scannet.scene import open_scene
from ops.synthetic import generate_scene

SETTINGS = PromptSettings(n_frames=6, image_resolution=160, bev_long_side=256)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("scene_prompts")
    truth = generate_scene(
        root / "scans", "scene0000_00", seed=4, n_frames=12, color_size=(320, 240), depth_size=(160, 120)
    )
    out = root / "out" / "scene0000_00"
    result = prepare_scene(truth.scene_dir, out, SETTINGS)
    return truth.scene_dir, out, result


def _recheck(raw, out):
    scene = open_scene(raw)
    entries = json.loads(SceneLayout(out).frames_meta.read_text())["frames"]
    frames = scene.read_frames([entry["source_index"] for entry in entries], colour=False)
    return check_markers_complete(out, frames, scene, SETTINGS)


def test_markers_check_fails_on_a_dropped_or_invented_marker(prepared):
    raw, out, result = prepared
    assert result.checks["markers_complete"]["passed"]
    path = SceneLayout(out).frames_meta
    original = path.read_text()
    meta = json.loads(original)
    frame = next(entry for entry in meta["frames"] if entry["markers"])
    dropped = sorted(frame["markers"], key=int)[0]
    try:
        del frame["markers"][dropped]
        frame["markers"]["999"] = {"uv": [1.0, 1.0], "visible_points": 50}
        path.write_text(json.dumps(meta))
        outcome = _recheck(raw, out)
        assert not outcome["passed"]
        assert outcome["missing"] == [f"{frame['file']}:{dropped}"]
        assert outcome["unexpected"] == [f"{frame['file']}:999"]
    finally:
        path.write_text(original)
    assert _recheck(raw, out)["passed"]


def test_frames_check_fails_on_a_repeated_image_or_index(tmp_path, prepared):
    _, out, result = prepared
    assert result.checks["frames_distinct"]["passed"]
    copy = SceneLayout(tmp_path)
    frames = copy.frames
    shutil.copytree(SceneLayout(out).frames, frames)
    first, second = (frames / f"raw_{n:02d}.jpg" for n in (0, 1))
    same_size = bytearray(first.read_bytes())
    same_size[-3] ^= 0xFF  # same size, other bytes: still distinct
    second.write_bytes(bytes(same_size))
    assert check_frames_distinct(tmp_path)["passed"]
    second.write_bytes(first.read_bytes())
    assert not check_frames_distinct(tmp_path)["passed"]
    shutil.copy(out / "frames" / "raw_01.jpg", second)
    meta = json.loads(copy.frames_meta.read_text())
    meta["frames"][1]["source_index"] = meta["frames"][0]["source_index"]
    copy.frames_meta.write_text(json.dumps(meta))
    outcome = check_frames_distinct(tmp_path)
    assert not outcome["passed"] and outcome["distinct_indices"] == outcome["num_frames"] - 1


def test_bev_check_fails_on_a_blank_or_nearly_blank_image():
    image = np.full((100, 100, 3), 255, np.uint8)
    assert not check_bev_not_blank(image)["passed"]
    image[:4, :] = (250, 255, 255)  # 4% of pixels are near-white but still background
    image[4:8, :] = (249, 255, 255)  # 4% coloured: under the 5% line
    outcome = check_bev_not_blank(image)
    assert not outcome["passed"] and outcome["filled_fraction"] == 0.04
    image[8:12, :] = (0, 0, 0)
    assert check_bev_not_blank(image) == {"passed": True, "filled_fraction": 0.08}


def test_scenes_are_handed_out_largest_first(tmp_path):
    sizes = {"scene_a": [10, 5], "scene_b": [30], "scene_c": [8, 7], "scene_d": []}  # bytes per file
    for name, files in sizes.items():
        (tmp_path / name / "sub").mkdir(parents=True)
        for n, size in enumerate(files):
            (tmp_path / name / ("sub" if n else "") / f"f{n}").write_bytes(b"x" * size)
    folders = [tmp_path / name for name in ("scene_d", "scene_c", "scene_a", "scene_b", "scene_missing")]
    # b (30) first; a and c tie at 15 and go by name; empty d, then the unreadable folder, which weighs nothing
    assert [f.name for f in largest_first(folders)] == ["scene_b", "scene_a", "scene_c", "scene_d", "scene_missing"]
