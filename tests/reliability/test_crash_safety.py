"""Crashes mid-write: a SIGKILLed shard writer leaves nothing that looks complete and the re-run is byte-identical;
a Ray worker SIGKILLed during a bulk run is retried and the run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from assets.partitions import partition_range_tags, scene_partitions
from assets.visual_prompts import visual_prompts
from ops.core.errors import SceneInputError
from ops.dataset.shards import read_manifest, verify_shards
from ops.synthetic import generate_dataset
from resources.ray import SceneRay
from resources.storage import StorageRoot

CHILD = Path(__file__).with_name("shard_child.py")
PROJECT_DIR = Path(__file__).resolve().parents[2]


def write_shards_process(root: Path, out_dir: Path, kill_after_files: int | None = None) -> int:
    """Run the shard writer in its own process; with ``kill_after_files`` SIGKILL it once that many Parquet files
    of the set are written. Returns the exit status."""
    args = [sys.executable, str(CHILD), str(root), str(out_dir)] + ([str(kill_after_files)] if kill_after_files else [])
    child = subprocess.Popen(
        args, stdout=subprocess.PIPE, text=True, cwd=PROJECT_DIR, env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    )
    if kill_after_files:
        for _ in range(kill_after_files):
            line = child.stdout.readline()
            assert line.startswith("wrote "), line
        child.send_signal(signal.SIGKILL)
    child.wait(timeout=120)
    return child.returncode


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sigkilled_shard_writer_leaves_nothing_complete_and_rerun_is_identical(tmp_path):
    root, out = tmp_path / "root", tmp_path / "root" / "dataset" / "shards" / "train"
    assert write_shards_process(root, tmp_path / "reference") == 0  # a clean build, elsewhere, for comparison
    reference = snapshot(tmp_path / "reference")
    assert len([name for name in reference if name.endswith(".parquet")]) >= 3

    assert write_shards_process(root, out, kill_after_files=2) == -signal.SIGKILL
    assert not out.exists()  # the set is renamed into place only when whole
    with pytest.raises(SceneInputError, match="cannot read shard manifest"):
        read_manifest(out)
    for leftover in out.parent.iterdir():  # only hidden staging folders remain, and none holds a manifest
        assert leftover.name.startswith(f".{out.name}.staging-"), leftover
        assert not list(leftover.rglob("manifest.json")) and not list(leftover.rglob("dataset_info.json"))

    assert write_shards_process(root, out) == 0
    assert verify_shards(out) == []
    assert snapshot(out) == reference  # byte-identical to the uninterrupted build
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # the killed writer's staging folder is gone


def test_sigkill_during_rebuild_keeps_the_previous_set_intact(tmp_path):
    root, out = tmp_path / "root", tmp_path / "root" / "dataset" / "shards" / "train"
    assert write_shards_process(root, out) == 0
    before = snapshot(out)
    assert write_shards_process(root, out, kill_after_files=1) == -signal.SIGKILL
    assert verify_shards(out) == [] and snapshot(out) == before


def _ray_task_workers() -> list[int]:
    """PIDs of Ray workers currently executing a scene task (Ray titles them ``ray::<function name>``)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/cmdline").read_bytes().startswith(b"ray::_prepare_scene_task"):
                    found.append(int(entry))
            except OSError:
                pass
    return found


@pytest.mark.slow
def test_killed_ray_worker_is_retried_and_the_bulk_run_completes(tmp_path):
    storage = StorageRoot(root=str(tmp_path / "root"))
    generate_dataset(storage.raw_path, n_scenes=2, seed=2, n_frames=24, color_size=(160, 120), depth_size=(80, 60))
    scenes = sorted(p.name for p in storage.scans_dir.iterdir())
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(scene_partitions.name, scenes)
    killed: list[int] = []

    def kill_first_busy_worker() -> None:
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            for pid in _ray_task_workers():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_busy_worker, daemon=True)
    killer.start()
    with tempfile.TemporaryDirectory(prefix="g4s-ray-", dir="/tmp") as ray_tmp:
        result = dg.materialize(
            [visual_prompts],
            instance=instance,
            raise_on_error=False,
            resources={"storage": storage, "ray_cluster": SceneRay(temp_dir=ray_tmp)},
            run_config={"ops": {"visual_prompts": {"config": {"n_frames": 4}}}},
            tags=partition_range_tags(scenes[0], scenes[-1]),
        )
    killer.join(timeout=5)
    assert killed, "no Ray worker was seen running a scene task"
    assert result.success, [str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure]
    for stage in ("point_cloud", "instance_masks", "bev_image", "marked_frames"):
        assert instance.get_materialized_partitions(dg.AssetKey(stage)) == set(scenes)
    assert not [p for p in (storage.root_path / "scenes").rglob("*") if p.name.startswith(".")]
