"""Lineage of checkpoints: which scenes a checkpoint was trained on, and the chain back to the raw scans.

A checkpoint version's ``lineage.json`` (``ops.model.training.publish``) records its shard set and data version, the
scenes in those shards (``train_scenes``), and for each scene the data and code versions Dagster recorded for the
per-scene assets and the raw scan's fingerprint (``scenes``), then the recipe, base model and code commit. The
same record is the checkpoint materialisation's ``lineage`` metadata, so a pruned version is still traceable.

``checkpoint_chain`` flattens one record into (step, value) rows; ``checkpoints_with_scene`` picks, among the
records of every experiment and version, those whose training data held a scene (``gpt4scene lineage``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ops.dataset.shards import iter_rows

Lineage = Mapping[str, Any]


def train_scenes(shards_dir: str | Path) -> list[str]:
    """The scene IDs of every row of a shard set, sorted and distinct."""
    return sorted({row["scene_id"] for row in iter_rows(shards_dir, columns=["scene_id"])})


def checkpoint_chain(lineage: Lineage) -> list[tuple[str, str]]:
    """(step, value) rows: checkpoint → shard data version → per-scene data versions → raw-scan fingerprints →
    code versions and recipe."""
    experiment = lineage["experiment"]
    rows = [
        ("checkpoint", f"{experiment['name']} {lineage['version']} ({lineage['checkpoint']})"),
        ("created", lineage.get("created", "?")),
    ]
    shards = lineage.get("shards")
    if shards:
        rows += [
            ("shards", shards["path"]),
            ("shards data version", shards["data_version"]),
            ("shards rows", str(shards["num_rows"])),
        ]
    rows.append(("train scenes", str(len(lineage.get("train_scenes", [])))))
    for scene_id, assets in sorted(lineage.get("scenes", {}).items()):
        for asset, record in assets.items():
            code = f" (code {record['code_version']})" if record.get("code_version") else ""
            run = f" (run {record['run_id'][:8]})" if record.get("run_id") else ""
            version = record.get("data_version") or ("no data version" if run else "never recorded")
            rows.append((f"  {scene_id} {asset}", f"{version}{code}{run}"))
    rows += [
        ("base model", f"{lineage['base_model']['path']} ({lineage['base_model']['fingerprint'][:12]})"),
        ("recipe", f"{lineage['recipe']['path']} (hash {lineage['recipe']['hash'][:12]})"),
        ("experiment hash", experiment["hash"]),
        ("code commit", lineage.get("code_commit", "unknown")),
    ]
    return rows


@dataclass(frozen=True)
class CheckpointRef:
    """One checkpoint version that trained on a scene: where it is and whether it is the experiment's latest."""

    experiment: str
    version: str
    status: str  # current (the experiment's latest version), past (kept), pruned (only the record is left)
    created: str
    shards_data_version: str
    path: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def checkpoints_with_scene(
    records: Iterable[Lineage], scene_id: str, latest: Mapping[str, str], on_disk: Mapping[tuple[str, str], Path]
) -> list[CheckpointRef]:
    """The records (any experiment, any version, deduplicated) whose train scenes hold ``scene_id``; ``latest`` is
    each experiment's latest version, ``on_disk`` the folders still present by (experiment, version)."""
    found: dict[tuple[str, str], CheckpointRef] = {}
    for lineage in records:
        key = (lineage["experiment"]["name"], lineage["version"])
        if key in found or scene_id not in lineage.get("train_scenes", []):
            continue
        status = "current" if latest.get(key[0]) == key[1] else ("past" if key in on_disk else "pruned")
        shards = lineage.get("shards") or {}
        found[key] = CheckpointRef(
            key[0],
            key[1],
            status,
            lineage.get("created", "?"),
            shards.get("data_version", "-"),
            str(on_disk.get(key, "-")),
        )
    return sorted(found.values(), key=lambda ref: (ref.experiment, ref.version))


def text_table(header: list[str], rows: Iterable[Iterable[str]]) -> str:
    """A plain aligned table for the terminal."""
    body = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *body, strict=False)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) for row in [header, *body]]
    return "\n".join(line.rstrip() for line in lines)
