"""Opening input files safely: only regular files, read with a size bound, with errors that name the scene and file.

A FIFO, a device or a folder where a file belongs would make a plain ``open``/``imread`` block forever or read
without end, so every reader of scene input asks ``regular_file`` first (``os.stat`` follows a symlink to what it
names; a dangling or looping link is "missing" or "unreadable"). Every failure is a ``SceneInputError``.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ops.core.errors import SceneInputError

MAX_TEXT_BYTES = 1 << 30  # 1 GiB: ScanNet's largest JSON (segs of a big scan) is ~100 MB


def regular_file(path: Path, scene_id: str | None, what: str = "file") -> int:
    """The size of ``path`` in bytes once it is known to be a regular file; else ``SceneInputError`` saying why."""
    try:
        info = os.stat(path)
    except FileNotFoundError as exc:
        raise SceneInputError(scene_id, path, f"cannot read {what}: missing (or a dangling link)") from exc
    except OSError as exc:
        reason = "a symlink loop" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise SceneInputError(scene_id, path, f"cannot read {what}: {reason}") from exc
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device"
        raise SceneInputError(scene_id, path, f"{what} is {kind}, not a regular file")
    return info.st_size


def read_regular_bytes(path: Path, scene_id: str | None, what: str = "file", max_bytes: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``."""
    size = regular_file(path, scene_id, what)
    if size > max_bytes:
        raise SceneInputError(scene_id, path, f"{what} is {size} bytes, over the {max_bytes}-byte limit")
    try:
        with open(path, "rb") as handle:
            return handle.read(max_bytes + 1)
    except OSError as exc:
        raise SceneInputError(scene_id, path, f"cannot read {what}: {exc.strerror or exc}") from exc


def read_utf8_text(path: Path, scene_id: str | None, what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The text of ``path``; an unreadable, irregular, oversized or non-UTF-8 file raises ``SceneInputError``
    calling it ``what``."""
    data = read_regular_bytes(path, scene_id, what, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SceneInputError(scene_id, path, f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
