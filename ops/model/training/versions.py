"""Checkpoint versions of one experiment: ``models/checkpoints/<experiment>/v0001``, ``v0002``, ...

Versions increase monotonically per experiment and are never reused, even after pruning (the next version follows
the highest ever written, which ``next_version`` reads from the folder names and the ``.last_version`` marker).
A version folder is complete once its ``lineage.json`` exists (it is written last, and the folder is renamed into
place whole). ``prune_versions`` keeps the newest N complete versions and returns what it removed, for the log.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ops.core.atomic import write_text
from ops.model.training.checkpoint import LINEAGE_FILE

VERSION = re.compile(r"^v(\d{4,})$")
LAST_VERSION_FILE = ".last_version"


def version_name(number: int) -> str:
    return f"v{number:04d}"


def version_number(name: str) -> int | None:
    match = VERSION.match(name)
    return int(match.group(1)) if match else None


def list_versions(experiment_dir: Path) -> list[str]:
    """Complete versions (with ``lineage.json``), oldest first."""
    if not experiment_dir.is_dir():
        return []
    found = [p for p in experiment_dir.iterdir() if version_number(p.name) is not None and (p / LINEAGE_FILE).is_file()]
    return [p.name for p in sorted(found, key=lambda p: version_number(p.name))]


def latest_version(experiment_dir: Path) -> str | None:
    versions = list_versions(experiment_dir)
    return versions[-1] if versions else None


def next_version(experiment_dir: Path) -> str:
    """The version after the highest one ever written here (pruned ones included)."""
    numbers = [version_number(p.name) or 0 for p in experiment_dir.iterdir()] if experiment_dir.is_dir() else []
    marker = experiment_dir / LAST_VERSION_FILE
    if marker.is_file():
        numbers.append(version_number(marker.read_text().strip()) or 0)
    return version_name(max(numbers, default=0) + 1)


def record_version(experiment_dir: Path, version: str) -> None:
    """Remember ``version`` as the highest written, so pruning never lets a version name come back."""
    write_text(experiment_dir / LAST_VERSION_FILE, version + "\n")


def prune_versions(experiment_dir: Path, keep: int) -> list[str]:
    """Remove all but the newest ``keep`` complete versions; the removed names, oldest first."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    removed = list_versions(experiment_dir)[:-keep]
    for name in removed:
        shutil.rmtree(experiment_dir / name)
    return removed
