"""Cheap change detection for raw scan folders: a fingerprint of every file's relative path, size and mtime.

Hashing the content of every scan on each rebuild would read the whole dataset (a ScanNet `.sens` is 0.5-1.5 GB),
so, as make and rsync do, a file counts as changed when its size or modification time changes. Rewriting a file
with identical bytes (e.g. `touch`) therefore triggers a rebuild of that scene; a changed file never goes unseen
unless its size and mtime are both restored.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ops.core.atomic import canonical_json

MISSING = "missing"


def sha256_hex(data: bytes) -> str:
    """sha256 of ``data``, hex."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, hex, read in blocks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def content_hash(obj: object) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys, no spaces): the same value gives the same hash."""
    return sha256_hex(canonical_json(obj).encode("utf-8"))


def folder_files(folder: str | Path) -> list[tuple[str, os.stat_result]]:
    """``(relative posix path, stat)`` of every file below ``folder``, sorted; none when it does not exist.
    Hidden entries (staging folders, editor files) are left out."""
    folder = Path(folder)
    files = []
    for current, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                path = Path(current) / name
                files.append((path.relative_to(folder).as_posix(), path.stat()))
    return files


def folder_fingerprint(folder: str | Path) -> str:
    """sha256 over the sorted (relative path, size, mtime_ns) of every file below ``folder``; ``"missing"`` when the
    folder does not exist. Hidden entries (staging folders, editor files) are ignored."""
    if not Path(folder).is_dir():
        return MISSING
    entries = [[name, stat.st_size, stat.st_mtime_ns] for name, stat in folder_files(folder)]
    return content_hash(entries)
