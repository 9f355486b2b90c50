"""Two writers of one scene: ``prepare_scene`` holds the scene folder's lock, so racing writers take turns and leave
complete, byte-identical artifacts; a staging folder is removed only when its writer is provably gone."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ops.core.atomic import STAGING_INFIX, staging_dir, write_bytes
from ops.core.locking import LOCK_NAME, folder_lock, holds_lock, this_host, writer_is_gone
from ops.prompts.driver import PromptSettings, prepare_scene
from ops.synthetic import generate_scene

SETTINGS = PromptSettings(n_frames=4, image_resolution=96, bev_long_side=128)
ROUNDS = 10
HOLDER = """
import sys, time
from ops.core.atomic import staging_dir, write_bytes
from ops.core.locking import folder_lock
with folder_lock(sys.argv[1]):
    with staging_dir(sys.argv[1] + "/pointcloud") as tmp:
        write_bytes(tmp / "coord.npy", b"live")
        print(tmp, flush=True)
        time.sleep(60)
"""


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (hidden ones included) by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    """The PID of a process that has just exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def fake_staging(final_dir: Path, host: str, pid: int) -> Path:
    folder = final_dir.parent / f".{final_dir.name}{STAGING_INFIX}{host}-{pid}-abc123"
    folder.mkdir(parents=True)
    (folder / "coord.npy").write_bytes(b"partial")
    return folder


def test_a_live_writers_staging_folder_survives_and_a_dead_ones_is_removed(tmp_path):
    scene = tmp_path / "scene0000_00"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(scene)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        live = Path(holder.stdout.readline().strip())
        assert live.is_dir() and live.name.startswith(f".pointcloud{STAGING_INFIX}{this_host()}-{holder.pid}-")
        dead = fake_staging(scene / "pointcloud", this_host(), dead_pid())
        elsewhere = fake_staging(scene / "pointcloud", "another-host", os.getpid() + 1)

        with staging_dir(scene / "pointcloud") as tmp:  # a writer that does not take the lock
            write_bytes(tmp / "coord.npy", b"mine")

        assert (live / "coord.npy").read_bytes() == b"live"  # the live writer's work is untouched
        assert not dead.exists()  # its writer's PID is gone on this host
        assert elsewhere.exists()  # a writer on another host cannot be proven gone
        assert (scene / LOCK_NAME).exists()  # still held by the live writer
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(scene):  # the killed holder's lock was dropped by the kernel; now every leftover is provably stale
        assert holds_lock(scene / "pointcloud")
        with staging_dir(scene / "pointcloud") as tmp:
            write_bytes(tmp / "coord.npy", b"again")
    assert not live.exists() and not elsewhere.exists()
    assert sorted(p.name for p in scene.iterdir()) == ["pointcloud"]  # the lock file goes with the lock
    assert (scene / "pointcloud" / "coord.npy").read_bytes() == b"again"


def test_writer_is_gone_only_when_provably_dead():
    assert writer_is_gone(this_host(), dead_pid())
    assert not writer_is_gone(this_host(), os.getpid())
    assert not writer_is_gone(this_host(), 1)  # alive (init), even if owned by another user
    assert not writer_is_gone("another-host", dead_pid())


def test_the_lock_leaves_no_trace_and_refuses_reentry(tmp_path):
    scene = tmp_path / "scenes" / "scene0000_00"
    with folder_lock(scene):
        assert (scene / LOCK_NAME).exists() and holds_lock(scene / "frames" / "x.jpg")
        with pytest.raises(RuntimeError, match="already locked by this thread"):
            with folder_lock(scene):
                pass
    assert not scene.exists()  # made for the lock, left empty: removed again
    assert not holds_lock(scene)


def _race_writer(raw: str, out: str, delay: float, barrier, results) -> None:
    """One writer process: at every round, wait for the start, then ``prepare_scene`` after ``delay`` s."""
    for _ in range(ROUNDS):
        barrier.wait()
        time.sleep(delay)
        try:
            result = prepare_scene(raw, out, SETTINGS)
            results.put(("ok", sorted(result.stages)))
        except BaseException as exc:  # reported to the parent, which fails the test
            results.put(("error", repr(exc)))


def test_two_writers_racing_on_one_scene_leave_it_complete_and_identical(tmp_path):
    truth = generate_scene(
        tmp_path / "scans", "scene0000_00", seed=4, n_frames=10, color_size=(160, 120), depth_size=(80, 60)
    )
    reference = tmp_path / "reference" / "scene0000_00"
    prepare_scene(truth.scene_dir, reference, SETTINGS)
    expected = snapshot(reference)
    assert {name.split("/")[0] for name in expected} == {"pointcloud", "instances", "bev", "frames"}

    out = tmp_path / "root" / "scenes" / "scene0000_00"
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(3), context.Queue()
    writers = [
        context.Process(target=_race_writer, args=(str(truth.scene_dir), str(out), delay, barrier, results))
        for delay in (0.0, 0.05)
    ]
    for writer in writers:
        writer.start()
    try:
        for round_index in range(ROUNDS):
            barrier.wait(timeout=120)
            outcomes = [results.get(timeout=120) for _ in writers]
            assert all(status == "ok" for status, _ in outcomes), (round_index, outcomes)
            assert snapshot(out) == expected, round_index  # every artifact complete, byte-identical, nothing extra
            leftovers = [p for p in out.parent.parent.rglob("*") if p.name.startswith(".")]
            assert not leftovers, (round_index, leftovers)  # no staging folder, no .old, no lock file
    finally:
        for writer in writers:
            writer.join(timeout=30)
            if writer.is_alive():
                writer.kill()
