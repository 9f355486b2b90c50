"""The `gpt4scene` command line, run as a user runs it (subprocesses of the installed console script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


def gpt4scene(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600
    )


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    done = gpt4scene(
        "synth",
        "--out",
        str(out),
        "--scenes",
        "2",
        "--seed",
        "5",
        "--frames",
        "24",
        "--color-width",
        "160",
        "--color-height",
        "120",
        "--depth-width",
        "80",
        "--depth-height",
        "60",
    )
    assert done.returncode == 0, done.stderr
    return out


def test_synth_then_inspect(synth_dir):
    scenes = sorted((synth_dir / "scans").iterdir())
    assert [p.name for p in scenes] == ["scene0000_00", "scene0001_00"]
    done = gpt4scene("inspect", str(scenes[0]))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["scene_id"] == "scene0000_00" and summary["num_frames"] == 24
    assert summary["num_valid_frames"] == 21 and summary["color_size"] == [160, 120]
    assert summary["axis_alignment"] != [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]


def test_inspect_names_the_missing_file(synth_dir, tmp_path):
    broken = tmp_path / "scene0000_00"
    broken.mkdir()
    done = gpt4scene("inspect", str(broken))
    assert done.returncode == 2
    assert "scene0000_00" in done.stderr and "scene0000_00.txt" in done.stderr


def test_prepare_with_clusters_then_figures(synth_dir, tmp_path):
    out = tmp_path / "prepared"
    done = gpt4scene(
        "prepare", "--scans", str(synth_dir / "scans"), "--out", str(out), "--frames", "4", "--instances", "clusters"
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for scene in ("scene0000_00", "scene0001_00"):
        labels = json.loads((out / "scenes" / scene / "instances" / "labels.json").read_text())
        assert labels["source"] == "clusters" and len(labels["objects"]) >= 3
        assert len(json.loads((out / "scenes" / scene / "frames" / "frames.json").read_text())["frames"]) == 4
    figures = gpt4scene("figures", str(out / "scenes" / "scene0000_00"), "--out", str(tmp_path / "fig"))
    assert figures.returncode == 0, figures.stderr
    assert (tmp_path / "fig" / "scene0000_00_frames.png").stat().st_size > 10_000


def test_dotenv_is_generated_from_the_environment_defaults():
    from resources.environment import PROJECT_DIR, dotenv_text

    assert (PROJECT_DIR / ".env").read_text() == dotenv_text(), "regenerate: python -m resources.environment > .env"


def test_flags_take_default_help_and_choices_from_the_settings():
    from ops.prompts.driver import PromptSettings
    from pipelines.cli import build_parser

    args = build_parser().parse_args(["prepare", "--scans", "s", "--out", "o"])
    assert (args.n_frames, args.instance_source, args.proposals_dir) == (32, "gt", "")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["prepare", "--scans", "s", "--out", "o", "--instances", "bogus"])
    assert PromptSettings().n_frames == 32
