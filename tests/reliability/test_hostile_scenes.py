"""Hostile scene folders outside the bulk run: discovery reports what it cannot use (dangling and looping symlinks,
unreadable folders) instead of skipping it, `gpt4scene inspect` answers bad input with one line naming the file (no
traceback, never blocking, never invalid JSON), and a scene whose frames show no marker fails its check."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from corpus import DEFECTS, write_broken_scene
from fixtures_scannet import assemble_sens, write_scene

from ops.prompts.driver import PromptSettings, prepare_scene
from ops.scannet.scene import discover_scenes
from resources.training import PROJECT_DIR

TINY = PromptSettings(n_frames=2, image_resolution=96, bev_long_side=128, bev_marker_size=10, frame_marker_size=6)


def test_discovery_reports_broken_links_and_unreadable_folders(tmp_path, monkeypatch):
    scans = tmp_path / "scans"
    write_scene(scans, "sens", "scene0001_00")
    (scans / "scene0002_00").symlink_to(tmp_path / "nowhere")  # dangling
    (scans / "scene0003_00").symlink_to(scans / "scene0003_00")  # a loop
    (scans / "scene0004_00").symlink_to(write_scene(tmp_path / "elsewhere", "sens", "scene0004_00"))  # a good scene
    write_scene(scans, "sens", "scene0005_00")
    real_listdir = os.listdir

    def listdir(path):  # as root every folder is readable: refuse one the way a chmod 000 would
        if Path(path).name == "scene0005_00":
            raise PermissionError(13, "Permission denied", str(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    found = discover_scenes(scans)
    assert found.valid == ["scene0001_00", "scene0004_00"]
    assert "dangling symlink" in found.invalid["scene0002_00"][0]
    assert "symlink loop" in found.invalid["scene0003_00"][0]
    assert (
        "Permission denied" in found.invalid["scene0005_00"][0] and "scene0005_00" in found.invalid["scene0005_00"][0]
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["fifo_sens", "fifo_ply", "nan_color_intrinsics", "zero_focal_depth_intrinsics"])
def test_inspect_names_the_bad_file_in_one_line(tmp_path, kind):
    scene_id, hint = write_broken_scene(tmp_path, kind)
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "inspect", str(tmp_path / scene_id)],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=PROJECT_DIR,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and str(tmp_path / scene_id / scene_id) + hint in error, error
    assert done.stdout == ""  # no half-printed (or NaN-holding) JSON


def test_inspect_prints_valid_json_for_a_good_scene(tmp_path):
    scene = write_scene(tmp_path, "sens")
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "inspect", str(scene)], capture_output=True, text=True, cwd=PROJECT_DIR
    )
    assert done.returncode == 0, done.stderr
    json.loads(done.stdout, parse_constant=lambda name: pytest.fail(f"{name} in inspect's JSON"))


def test_a_scene_whose_frames_show_no_marker_fails_its_check(tmp_path):
    """Rigid, finite poses 1 km away: nothing projects into any frame, so no marker is drawn anywhere."""
    scene = write_scene(tmp_path / "scans", "sens")
    packed = assemble_sens()
    data = bytearray(packed.data)
    far = np.eye(4, dtype=np.float32)
    far[:3, 3] = (0.0, 0.0, 1000.0)
    for start in packed.frame_starts:
        data[start : start + 64] = struct.pack("<16f", *far.reshape(16).tolist())
    (scene / f"{scene.name}.sens").write_bytes(bytes(data))
    result = prepare_scene(scene, tmp_path / "out" / scene.name, TINY)
    check = result.checks["markers_complete"]
    assert not check["passed"] and check["reason"] == "no sampled frame shows any object marker"


def test_the_corpus_of_broken_scenes_is_large():
    assert len(DEFECTS) >= 30


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "name, content, message",
    [
        ("latin1.txt", b"pred_mask/m.txt 5 0.7\xe9\n", "not UTF-8"),
        ("bad_score.txt", b"pred_mask/m.txt 5 high\n", "not a number"),
        ("short_line.txt", b"pred_mask/m.txt 5\n", "per line"),
        ("fifo.txt", None, "FIFO"),
        ("folder.npz", "folder", "folder"),
    ],
)
def test_malformed_proposal_files_name_the_scene_and_file(tmp_path, name, content, message):
    from ops.core.errors import SceneInputError
    from ops.prompts.proposals import instances_from_proposals

    (tmp_path / "pred_mask").mkdir()
    (tmp_path / "pred_mask" / "m.txt").write_text("\n".join(["1", "0"] * 5))
    path = tmp_path / name
    if content is None:
        os.mkfifo(path)
    elif content == "folder":
        path.mkdir()
    else:
        path.write_bytes(content)
    coord = np.random.default_rng(0).random((10, 3)).astype(np.float32)
    with pytest.raises(SceneInputError, match=message) as error:
        instances_from_proposals(path, coord, scene_id="scene0000_00")
    assert "scene 'scene0000_00'" in str(error.value) and str(path) in str(error.value)
