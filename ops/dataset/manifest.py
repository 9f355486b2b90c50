"""A shard set's ``manifest.json``: what ``ops.dataset.shards.write_shards`` wrote, with hashes and the data version.

The manifest lists every Parquet file (sha256, rows, bytes), every extra file (sha256, bytes) and, in paths mode,
every referenced image (sha256). The data version is the sha256 of the canonical JSON of those entries sorted by
path, so it changes with any byte of the data and with nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.core.errors import SceneInputError
from ops.core.fingerprint import content_hash
from ops.core.layout import MANIFEST

MANIFEST_FORMAT = "gpt4scene-shards/1"


@dataclass(frozen=True)
class FileEntry:
    """One hashed file, its path relative to the shard set (images: to the storage root); ``rows`` for Parquet
    files, ``bytes`` for Parquet and extra files."""

    path: str
    sha256: str
    rows: int | None = None
    bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"path": self.path, "sha256": self.sha256}
        if self.rows is not None:
            entry["rows"] = self.rows
        if self.bytes is not None:
            entry["bytes"] = self.bytes
        return entry

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> FileEntry:
        return cls(str(entry["path"]), str(entry["sha256"]), entry.get("rows"), entry.get("bytes"))


def data_version(entries: Iterable[FileEntry]) -> str:
    """sha256 of the canonical JSON of the entries sorted by path."""
    return content_hash(sorted((e.to_dict() for e in entries), key=lambda e: e["path"]))


@dataclass(frozen=True)
class ShardManifest:
    """One shard set: its name, split, image mode and row-order seed, rows per task, the hashed files, the data
    version over them, and ``metadata`` (JSON-ready build information that does not enter the data version)."""

    dataset_name: str
    split: str
    image_mode: str
    seed: int
    num_rows: int
    tasks: dict[str, int]
    files: tuple[FileEntry, ...]
    extra_files: tuple[FileEntry, ...] = ()
    images: tuple[FileEntry, ...] = ()
    data_version: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def versioned_entries(self) -> tuple[FileEntry, ...]:
        """The entries the data version covers: Parquet files, extra files, referenced images."""
        return (*self.files, *self.extra_files, *self.images)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "dataset_name": self.dataset_name,
            "split": self.split,
            "image_mode": self.image_mode,
            "seed": self.seed,
            "num_rows": self.num_rows,
            "tasks": self.tasks,
            "files": [e.to_dict() for e in self.files],
            "extra_files": [e.to_dict() for e in self.extra_files],
            "images": [e.to_dict() for e in self.images],
            "data_version": self.data_version,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, manifest: Mapping[str, Any]) -> ShardManifest:
        def entries(key: str) -> tuple[FileEntry, ...]:
            return tuple(FileEntry.from_dict(e) for e in manifest.get(key, []))

        return cls(
            str(manifest["dataset_name"]),
            str(manifest["split"]),
            str(manifest["image_mode"]),
            int(manifest["seed"]),
            int(manifest["num_rows"]),
            dict(manifest["tasks"]),
            entries("files"),
            entries("extra_files"),
            entries("images"),
            str(manifest["data_version"]),
            dict(manifest.get("metadata", {})),
        )


def read_manifest(out_dir: str | Path) -> ShardManifest:
    """The shard set's manifest; a missing, unreadable or malformed one raises ``SceneInputError``."""
    path = Path(out_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SceneInputError(None, path, f"cannot read shard manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise SceneInputError(None, path, f"not a {MANIFEST_FORMAT} manifest")
    try:
        return ShardManifest.from_dict(manifest)
    except (KeyError, TypeError, ValueError) as exc:
        raise SceneInputError(None, path, f"malformed shard manifest: {exc}") from exc
