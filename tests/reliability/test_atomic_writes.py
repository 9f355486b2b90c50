"""``ops.core.atomic``: a file outside a staging folder is fsynced before it is renamed; inside one, its files are
fsynced in the background and the folder is renamed only once every one of them is on disk, or not at all."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest

import ops.core.atomic
from ops.core.atomic import staging_dir, write_bytes, write_json


@pytest.fixture
def fsync_log(monkeypatch):
    """Records (inode, thread name) of every fsync ``ops.core.atomic`` makes, then does the real fsync."""
    log: list[tuple[int, str]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        log.append((os.fstat(fd).st_ino, threading.current_thread().name))
        real_fsync(fd)

    monkeypatch.setattr(ops.core.atomic.os, "fsync", recording_fsync)
    return log


def test_a_lone_file_is_fsynced_by_its_writer_before_it_appears(tmp_path, fsync_log):
    write_bytes(tmp_path / "a.bin", b"payload")

    assert (tmp_path / "a.bin").read_bytes() == b"payload"
    assert fsync_log == [((tmp_path / "a.bin").stat().st_ino, threading.current_thread().name)]
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]  # no temporary file left


def test_every_file_of_a_staging_folder_is_on_disk_before_the_folder_appears(tmp_path, fsync_log, monkeypatch):
    synced_when_renamed: list[set[int]] = []
    real_replace_dir = ops.core.atomic.replace_dir

    def recording_replace_dir(tmp_dir, final_dir):
        synced_when_renamed.append({inode for inode, _ in fsync_log})
        real_replace_dir(tmp_dir, final_dir)

    monkeypatch.setattr(ops.core.atomic, "replace_dir", recording_replace_dir)
    final = tmp_path / "frames"
    with staging_dir(final) as tmp:
        for n in range(100):  # more than MAX_UNSYNCED_FILES
            write_bytes(tmp / f"frame_{n:02d}.jpg", bytes([n]) * 1000)
        write_json(tmp / "frames.json", {"frames": 100})

    inodes = {p.stat().st_ino for p in final.iterdir()}
    assert len(inodes) == 101 and synced_when_renamed == [inodes]
    assert all(name.startswith("fsync") for _, name in fsync_log)  # by the background thread, not the writer
    assert (final / "frame_07.jpg").read_bytes() == bytes([7]) * 1000
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]  # the staging folder is the final one now


def test_a_failed_fsync_in_a_staging_folder_keeps_the_previous_version(tmp_path, monkeypatch):
    final = tmp_path / "bev"
    with staging_dir(final) as tmp:
        write_bytes(tmp / "bev.png", b"old")
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        if os.fstat(fd).st_size == len(b"broken"):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(ops.core.atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        with staging_dir(final) as tmp:
            write_bytes(tmp / "bev.json", b"{}")
            write_bytes(tmp / "bev.png", b"broken")

    assert [p.name for p in final.iterdir()] == ["bev.png"] and (final / "bev.png").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["bev"]  # the failed staging folder is removed


def test_a_writer_that_outruns_the_disk_holds_a_bounded_number_of_open_files(tmp_path, monkeypatch):
    real_fsync = os.fsync
    open_fds: list[int] = []

    def slow_fsync(fd: int) -> None:
        open_fds.append(len(os.listdir("/proc/self/fd")))
        time.sleep(0.002)
        real_fsync(fd)

    monkeypatch.setattr(ops.core.atomic.os, "fsync", slow_fsync)
    baseline = len(os.listdir("/proc/self/fd"))
    with staging_dir(tmp_path / "many") as tmp:
        for n in range(300):
            write_bytes(tmp / f"{n}.bin", b"x")

    assert len(open_fds) == 300 and len(list((tmp_path / "many").iterdir())) == 300
    assert max(open_fds) <= baseline + ops.core.atomic.MAX_UNSYNCED_FILES + 4  # + the listing, the thread's own
    assert len(os.listdir("/proc/self/fd")) <= baseline + 1  # every descriptor closed


def test_an_error_in_the_writer_removes_the_staging_folder_and_closes_its_files(tmp_path):
    baseline = len(os.listdir("/proc/self/fd"))
    with pytest.raises(RuntimeError, match="encoder failed"):
        with staging_dir(tmp_path / "frames") as tmp:
            for n in range(10):
                write_bytes(tmp / f"{n}.jpg", b"x")
            raise RuntimeError("encoder failed")

    assert list(tmp_path.iterdir()) == []
    assert len(os.listdir("/proc/self/fd")) <= baseline + 1
    assert not ops.core.atomic._ACTIVE_STAGING


def test_a_file_written_beside_a_staging_folder_is_not_deferred(tmp_path, fsync_log):
    with staging_dir(tmp_path / "frames") as tmp:
        write_bytes(tmp_path / "manifest.json", b"{}")  # outside the staging folder: synced before it appears
        write_bytes(tmp / "frame_00.jpg", b"x")
        assert fsync_log[0] == (Path(tmp_path / "manifest.json").stat().st_ino, threading.current_thread().name)
