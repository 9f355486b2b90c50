"""``samples/index.json``: what the last samples build made, written last (``ops.dataset.build.build_task_samples``).

It holds the sample settings, the variants built, per split the scenes used and left out, the annotation issues and
per-task stats, the sha256 of every samples file, and the ``data_version`` (sha256 over those hashes) that the shard
manifests and the Dagster data versions follow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.core.errors import SceneInputError
from ops.core.layout import DatasetLayout
from ops.dataset.sample_builders import TaskStats


@dataclass
class SplitReport:
    """One split of a samples build: scenes used (sorted) and left out (id → reason), malformed annotation rows
    (count and the first ones listed), per-task stats and the rows per variant."""

    scenes: list[str]
    unavailable_scenes: dict[str, str]
    annotation_issues: int
    annotation_issues_listed: list[str]
    stats: dict[str, TaskStats]
    num_rows: int

    @property
    def rows(self) -> dict[str, int]:
        """Samples per task (every variant has the same)."""
        return {task: stats.samples for task, stats in self.stats.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenes": self.scenes,
            "unavailable_scenes": self.unavailable_scenes,
            "annotation_issues": self.annotation_issues,
            "annotation_issues_listed": self.annotation_issues_listed,
            "stats": {task: stats.to_dict() for task, stats in self.stats.items()},
            "rows": self.rows,
            "num_rows": self.num_rows,
        }

    @classmethod
    def from_dict(cls, report: Mapping[str, Any]) -> SplitReport:
        return cls(
            list(report["scenes"]),
            dict(report["unavailable_scenes"]),
            int(report["annotation_issues"]),
            list(report["annotation_issues_listed"]),
            {task: TaskStats.from_dict(stats) for task, stats in report["stats"].items()},
            int(report["num_rows"]),
        )


@dataclass
class SamplesIndex:
    """The index of one samples build. ``settings`` is the ``SampleSettings`` as JSON (as the shard manifests copy
    it); ``files`` maps each samples file name to its sha256."""

    settings: dict[str, Any]
    variants: list[str]
    splits: dict[str, SplitReport]
    files: dict[str, str]
    data_version: str

    @property
    def seed(self) -> int:
        """The RNG seed of the samples, which also orders the shard rows."""
        return int(self.settings["seed"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "variants": self.variants,
            "splits": {split: report.to_dict() for split, report in self.splits.items()},
            "files": self.files,
            "data_version": self.data_version,
        }

    @classmethod
    def from_dict(cls, index: Mapping[str, Any]) -> SamplesIndex:
        return cls(
            dict(index["settings"]),
            list(index["variants"]),
            {split: SplitReport.from_dict(report) for split, report in index["splits"].items()},
            dict(index["files"]),
            str(index["data_version"]),
        )


def read_samples_index(dataset_dir: str | Path) -> SamplesIndex:
    """``samples/index.json`` of the last samples build; missing means the samples were never built."""
    path = DatasetLayout(Path(dataset_dir)).samples_index
    try:
        return SamplesIndex.from_dict(json.loads(path.read_bytes().decode("utf-8")))
    except OSError as exc:
        raise SceneInputError(None, path, "no samples index: build the task samples first") from exc
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SceneInputError(None, path, f"cannot read the samples index: {exc}") from exc
