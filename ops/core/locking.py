"""One writer per artifact folder: an exclusive ``fcntl.flock`` on ``<folder>/.lock``, and who wrote a staging folder.

``folder_lock(scene_dir)`` is held for the whole ``ops.prompts.driver.prepare_scene``, so two processes building one
scene (two ``gpt4scene prepare`` runs, a retried Ray task beside a live one) take turns instead of destroying each
other's staging folders. The kernel drops the lock when its holder dies, SIGKILL included, so a crashed writer never
blocks the next one. The lock file is removed when the lock is released (and the folder too when the lock made it
and it is still empty): a prepared scene holds exactly the files it held before.

A staging folder's name carries its writer (``writer_tag``: host and PID), so a leftover can be told from the work
of a live writer: ``ops.core.atomic.staging_dir`` removes one only when this thread holds the folder's lock or the
writer's PID is gone on this host.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

LOCK_NAME = ".lock"

_HELD: dict[Path, int] = {}  # folder -> ident of the thread holding its lock, in this process
_HELD_LOCK = threading.Lock()


def this_host() -> str:
    """This machine's host name with every character but letters, digits, ``.`` and ``_`` made ``_``."""
    return re.sub(r"[^A-Za-z0-9._]", "_", socket.gethostname()) or "localhost"


def writer_tag() -> str:
    """``<host>-<pid>`` of this process, as staging folder names carry it."""
    return f"{this_host()}-{os.getpid()}"


def parse_writer_tag(text: str) -> tuple[str, int] | None:
    """``(host, pid)`` from ``<host>-<pid>-<anything without a dash>``; None when ``text`` is not of that form."""
    parts = text.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def writer_is_gone(host: str, pid: int) -> bool:
    """True only when the writer provably died: it ran on this host and no process has its PID.

    A writer on another host, or a PID now reused by another process, counts as alive (its leftover stays)."""
    if host != this_host() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def holds_lock(path: str | Path) -> bool:
    """Whether this thread holds the ``folder_lock`` of ``path`` or of a folder above it."""
    path = Path(os.path.abspath(path))
    me = threading.get_ident()
    with _HELD_LOCK:
        return any(_HELD.get(folder) == me for folder in (path, *path.parents))


@contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (created if missing), waiting for another holder to release it."""
    folder = Path(os.path.abspath(folder))
    with _HELD_LOCK:
        if _HELD.get(folder) == threading.get_ident():
            raise RuntimeError(f"{folder} is already locked by this thread")
    created = not folder.exists()
    fd = _acquire(folder / LOCK_NAME)
    with _HELD_LOCK:
        _HELD[folder] = threading.get_ident()
    try:
        yield folder
    finally:
        with _HELD_LOCK:
            del _HELD[folder]
        with suppress(FileNotFoundError):
            os.unlink(folder / LOCK_NAME)  # while still locked: a waiter then sees the file is gone and retries
        os.close(fd)
        if created:
            with suppress(OSError):  # not empty (the writer wrote) or already gone: either way leave it
                folder.rmdir()


def _acquire(path: Path) -> int:
    """An open descriptor of ``path`` holding its exclusive flock, on the file that ``path`` names right now."""
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:  # the folder was removed by the previous holder between mkdir and open
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # retried by Python when a signal interrupts the wait
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass  # the previous holder removed the file it locked: lock the current one
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
