"""One fine-tuning run around its launch: what it trains on (and where it resumes), then the published checkpoint.

``plan_training`` names the inputs and the run folder ``<root>/models/runs/<recipe>-<shards>-<base>/`` (so a second
launch after a crash resumes from the last saved step); the launch itself is the caller's (``resources.training``);
``publish_training`` reads rank 0's summary and publishes the checkpoint with its lineage
(``ops.model.training.checkpoint``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.core.fingerprint import content_hash
from ops.core.layout import ModelsLayout
from ops.dataset.manifest import ShardManifest, read_manifest
from ops.model.training.checkpoint import (
    LINEAGE_FILE,
    code_commit,
    model_fingerprint,
    publish_checkpoint,
    run_name,
    weights_kind,
)
from ops.model.training.recipe import LoadedRecipe
from ops.model.training.reporting import PROGRESS, SUMMARY
from ops.model.training.trainer import FINAL_DIR, SUMMARY_FILE


@dataclass(frozen=True)
class TrainingPlan:
    """A run's inputs (shard set and its manifest, base model and its fingerprint), recipe and run folder."""

    recipe: LoadedRecipe
    shards: Path
    shards_manifest: ShardManifest
    base_model: Path
    base_fingerprint: str
    run_dir: Path

    @property
    def shards_version(self) -> str:
        return self.shards_manifest.data_version

    @property
    def data_version(self) -> str:
        """Hash of the recipe, shards and base model versions: the published checkpoint's data version."""
        return content_hash([self.recipe.hash, self.shards_version, self.base_fingerprint])


@dataclass(frozen=True)
class PublishedCheckpoint:
    """The checkpoint folder, its weights kind (``lora`` or ``full``), lineage, rank 0's summary and the number of
    progress messages received."""

    path: Path
    weights: str
    lineage: dict[str, Any]
    summary: dict[str, Any]
    progress_messages: int


def plan_training(recipe: LoadedRecipe, shards: Path, base_model: Path, models: ModelsLayout) -> TrainingPlan:
    """Read the shard manifest and fingerprint the base model; the run folder follows from both and the recipe."""
    manifest = read_manifest(shards)
    fingerprint = model_fingerprint(base_model)
    run_dir = models.run(run_name(recipe.hash, manifest.data_version, fingerprint))
    return TrainingPlan(recipe, shards, manifest, base_model, fingerprint, run_dir)


def run_summary(messages: Sequence[Mapping[str, Any]], trained_dir: Path) -> dict[str, Any]:
    """Rank 0's summary message; a run that sent none (e.g. ran elsewhere) falls back to its file."""
    summaries = [m for m in messages if m.get("kind") == SUMMARY]
    if summaries:
        return {k: v for k, v in summaries[-1].items() if k != "kind"}
    return json.loads((trained_dir / SUMMARY_FILE).read_text(encoding="utf-8"))


def publish_training(
    plan: TrainingPlan,
    messages: Sequence[Mapping[str, Any]],
    checkpoint_dir: Path,
    launcher: Mapping[str, str],
    project_dir: Path,
) -> PublishedCheckpoint:
    """Publish the run's final weights to ``checkpoint_dir`` with ``lineage.json`` (inputs, recipe, code commit of
    ``project_dir``, ``launcher``, final metrics)."""
    trained = plan.run_dir / FINAL_DIR
    summary = run_summary(messages, trained)
    manifest = plan.shards_manifest
    lineage = {
        "shards": {
            "path": str(plan.shards),
            "data_version": manifest.data_version,
            "num_rows": manifest.num_rows,
        },
        "base_model": {"path": str(plan.base_model), "fingerprint": plan.base_fingerprint},
        "recipe": plan.recipe.summary(),
        "code_commit": code_commit(project_dir),
        "run_dir": str(plan.run_dir),
        "launcher": dict(launcher),
        "final_metrics": {k: v for k, v in summary.items() if k != "log_history"},
    }
    out = publish_checkpoint(trained, checkpoint_dir, lineage)
    progress = sum(1 for m in messages if m.get("kind") == PROGRESS)
    return PublishedCheckpoint(out, weights_kind(out), lineage, summary, progress)


def read_lineage(checkpoint_dir: Path) -> dict[str, Any]:
    """The published checkpoint's ``lineage.json``."""
    return json.loads((checkpoint_dir / LINEAGE_FILE).read_text(encoding="utf-8"))
