"""One fine-tuning run around its launch: what it trains on (and where it resumes), then the published checkpoint.

``plan_training`` names the inputs and the run folder ``<root>/models/runs/<experiment>-<recipe>-<shards>-<base>/``
(so a second launch after a crash resumes that experiment from its last saved step); the launch itself is the
caller's (``resources.training``); ``publish_training`` reads rank 0's summary and publishes the next checkpoint
version ``models/checkpoints/<experiment>/<version>/`` with its lineage (``ops.model.training.checkpoint``,
``ops.model.training.versions``). ``publish_base`` records the base model as the checkpoint of an experiment that
does not train.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ops.core.atomic import staging_dir, write_json
from ops.core.fingerprint import content_hash
from ops.core.layout import ModelsLayout
from ops.dataset.manifest import ShardManifest, read_manifest
from ops.model.experiments import Experiment
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
from ops.model.training.versions import next_version, record_version


@dataclass(frozen=True)
class TrainingPlan:
    """A run's experiment (and so recipe), inputs (shard set and its manifest, base model and its fingerprint) and
    run folder."""

    experiment: Experiment
    shards: Path
    shards_manifest: ShardManifest
    base_model: Path
    base_fingerprint: str
    run_dir: Path

    @property
    def recipe(self) -> LoadedRecipe:
        return self.experiment.recipe

    @property
    def shards_version(self) -> str:
        return self.shards_manifest.data_version

    @property
    def data_version(self) -> str:
        """Hash of the experiment, shards and base model versions: the published checkpoint's data version."""
        return content_hash([self.experiment.hash, self.shards_version, self.base_fingerprint])


@dataclass(frozen=True)
class PublishedCheckpoint:
    """The checkpoint version and its folder, its weights kind (``lora`` or ``full``), lineage, rank 0's summary and
    the number of progress messages received."""

    version: str
    path: Path
    weights: str
    lineage: dict[str, Any]
    summary: dict[str, Any]
    progress_messages: int


def plan_training(experiment: Experiment, shards: Path, base_model: Path, models: ModelsLayout) -> TrainingPlan:
    """Read the shard manifest and fingerprint the base model; the run folder follows from both and the
    experiment."""
    manifest = read_manifest(shards)
    fingerprint = model_fingerprint(base_model)
    run_dir = models.run(run_name(experiment.name, experiment.hash, manifest.data_version, fingerprint))
    return TrainingPlan(experiment, shards, manifest, base_model, fingerprint, run_dir)


def run_summary(messages: Sequence[Mapping[str, Any]], trained_dir: Path) -> dict[str, Any]:
    """Rank 0's summary message; a run that sent none (e.g. ran elsewhere) falls back to its file."""
    summaries = [m for m in messages if m.get("kind") == SUMMARY]
    if summaries:
        return {k: v for k, v in summaries[-1].items() if k != "kind"}
    return json.loads((trained_dir / SUMMARY_FILE).read_text(encoding="utf-8"))


def publish_training(
    plan: TrainingPlan,
    messages: Sequence[Mapping[str, Any]],
    models: ModelsLayout,
    launcher: Mapping[str, str],
    project_dir: Path,
    data_lineage: Mapping[str, Any],
) -> PublishedCheckpoint:
    """Publish the run's final weights as the experiment's next version with ``lineage.json`` (experiment, inputs
    and ``data_lineage``: train scenes and their versions, recipe, code commit of ``project_dir``, ``launcher``,
    final metrics)."""
    trained = plan.run_dir / FINAL_DIR
    summary = run_summary(messages, trained)
    manifest = plan.shards_manifest
    experiment_dir = models.experiment_checkpoints(plan.experiment.name)
    version = next_version(experiment_dir)
    lineage = {
        "experiment": plan.experiment.summary(),
        "version": version,
        "checkpoint": "trained",
        "shards": {
            "path": str(plan.shards),
            "data_version": manifest.data_version,
            "num_rows": manifest.num_rows,
        },
        **data_lineage,
        "base_model": {"path": str(plan.base_model), "fingerprint": plan.base_fingerprint},
        "recipe": plan.recipe.summary(),
        "code_commit": code_commit(project_dir),
        "created": utc_now(),
        "run_dir": str(plan.run_dir),
        "launcher": dict(launcher),
        "final_metrics": {k: v for k, v in summary.items() if k != "log_history"},
    }
    out = publish_checkpoint(trained, experiment_dir / version, lineage)
    record_version(experiment_dir, version)
    progress = sum(1 for m in messages if m.get("kind") == PROGRESS)
    return PublishedCheckpoint(version, out, weights_kind(out), lineage, summary, progress)


def publish_base(experiment: Experiment, base_model: Path, models: ModelsLayout, project_dir: Path) -> tuple[str, dict]:
    """The checkpoint of an experiment that does not train: a version folder holding only ``lineage.json``, which
    says the base model itself is the checkpoint. Returns (version, lineage)."""
    experiment_dir = models.experiment_checkpoints(experiment.name)
    version = next_version(experiment_dir)
    lineage = {
        "experiment": experiment.summary(),
        "version": version,
        "checkpoint": "base_model",
        "shards": None,
        "train_scenes": [],
        "scenes": {},
        "base_model": {"path": str(base_model), "fingerprint": model_fingerprint(base_model)},
        "recipe": experiment.recipe.summary(),
        "code_commit": code_commit(project_dir),
        "created": utc_now(),
    }
    with staging_dir(experiment_dir / version) as tmp:
        write_json(tmp / LINEAGE_FILE, lineage)
    record_version(experiment_dir, version)
    return version, lineage


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (lineage's date of a checkpoint)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def read_lineage(checkpoint_dir: Path) -> dict[str, Any]:
    """The published checkpoint's ``lineage.json``."""
    return json.loads((checkpoint_dir / LINEAGE_FILE).read_text(encoding="utf-8"))
