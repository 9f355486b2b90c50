"""``gpt4scene lineage``: where a checkpoint came from, and which checkpoints a scene went into.

``lineage checkpoint EXPERIMENT [--version V]`` prints the chain of one checkpoint version (default the latest):
checkpoint → shard data version → per-scene data versions → raw-scan fingerprints → code versions and recipe.
``lineage scene SCENE_ID`` lists every checkpoint version, current, past or pruned, whose training data held the
scene: the models to retrain when a scan turns out broken or must be withdrawn. Both read the Dagster instance
(every `checkpoint` materialisation keeps its lineage as metadata, so pruned versions stay traceable) and the
``lineage.json`` of the versions on disk. A table, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from pipelines.cli.common import Command
from resources.environment import apply_defaults

CHECKPOINT_KEY = "checkpoint"


def instance_lineages(instance: Any) -> list[dict[str, Any]]:
    """The `lineage` metadata of every `checkpoint` materialisation the instance recorded, newest first."""
    import dagster as dg

    found, cursor = [], None
    while True:
        result = instance.fetch_materializations(dg.AssetKey(CHECKPOINT_KEY), limit=500, cursor=cursor)
        for record in result.records:
            value = record.asset_materialization.metadata.get("lineage")
            if value is not None:
                found.append(value.value)
        if not result.has_more:
            return found
        cursor = result.cursor


def disk_lineages(checkpoints_dir: Path) -> dict[tuple[str, str], tuple[Path, dict[str, Any]]]:
    """``{(experiment, version): (folder, lineage.json)}`` of every complete version on disk."""
    from ops.model.training.checkpoint import LINEAGE_FILE
    from ops.model.training.versions import list_versions

    found = {}
    for experiment_dir in sorted(p for p in checkpoints_dir.glob("*") if p.is_dir()):
        for version in list_versions(experiment_dir):
            folder = experiment_dir / version
            found[(experiment_dir.name, version)] = (folder, json.loads((folder / LINEAGE_FILE).read_text()))
    return found


def checkpoint_lineage(instance: Any, checkpoints_dir: Path, experiment: str, version: str | None) -> dict[str, Any]:
    """The lineage record of ``experiment``'s ``version`` (default its latest): from disk, else from the instance."""
    on_disk = disk_lineages(checkpoints_dir)
    if version is None:
        versions = sorted(v for e, v in on_disk if e == experiment)
        if versions:
            version = versions[-1]
    if (experiment, version) in on_disk:
        return on_disk[(experiment, version)][1]
    for lineage in instance_lineages(instance):  # newest first
        if lineage["experiment"]["name"] == experiment and version in (None, lineage["version"]):
            return lineage
    raise LookupError(f"no checkpoint {experiment} {version or '(any version)'} on disk or in the Dagster instance")


def scene_lineage(instance: Any, checkpoints_dir: Path, scene_id: str) -> list[Any]:
    """Every checkpoint version (``ops.model.lineage.CheckpointRef``) whose training data held ``scene_id``."""
    from ops.model.lineage import checkpoints_with_scene

    on_disk = disk_lineages(checkpoints_dir)
    latest: dict[str, str] = {}
    for experiment, version in sorted(on_disk):
        latest[experiment] = version
    records = [lineage for _, lineage in on_disk.values()] + instance_lineages(instance)
    folders = {key: folder for key, (folder, _) in on_disk.items()}
    return checkpoints_with_scene(records, scene_id, latest, folders)


def cmd_lineage(args: argparse.Namespace) -> int:
    apply_defaults(args.root)
    import dagster as dg

    from ops.core.layout import StorageLayout
    from ops.model.lineage import checkpoint_chain, text_table

    instance = dg.DagsterInstance.get()
    checkpoints_dir = StorageLayout(Path(os.environ["GPT4SCENE_ROOT"])).models.checkpoints
    if args.kind == "checkpoint":
        try:
            lineage = checkpoint_lineage(instance, checkpoints_dir, args.name, args.version)
        except LookupError as exc:
            print(f"gpt4scene lineage: {exc}")
            return 1
        if args.json:
            print(json.dumps({"lineage": lineage, "chain": checkpoint_chain(lineage)}, indent=2))
        else:
            print(text_table(["step", "value"], checkpoint_chain(lineage)))
        return 0
    refs = scene_lineage(instance, checkpoints_dir, args.name)
    if args.json:
        print(json.dumps({"scene": args.name, "checkpoints": [ref.as_json() for ref in refs]}, indent=2))
    elif not refs:
        print(f"no checkpoint was trained on {args.name}")
    else:
        header = ["experiment", "version", "status", "created", "shards data version", "path"]
        rows = [[r.experiment, r.version, r.status, r.created, r.shards_data_version[:12], r.path] for r in refs]
        print(text_table(header, rows))
    return 0


def lineage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=("checkpoint", "scene"), help="a checkpoint's chain, or a scene's checkpoints")
    parser.add_argument("name", help="EXPERIMENT (checkpoint) or SCENE_ID (scene)")
    parser.add_argument("--version", default=None, help="checkpoint version, e.g. v0002 (default: the latest)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--root", default=None, help="storage root (default ./data or $GPT4SCENE_ROOT)")


COMMANDS = {
    "lineage": Command(
        "a checkpoint's chain back to the scans, or every checkpoint trained on a scene", lineage_arguments, cmd_lineage
    )
}
