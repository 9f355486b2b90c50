"""Training assets: `base_model` → `checkpoint` (partitioned by experiment, and its checks), downstream of the
`training_shards` partition of each experiment's data variant.

`base_model` is the model folder training starts from: a configured download (``BaseModelSource.model_dir``, env
``GPT4SCENE_BASE_MODEL``, used in place) or the tiny random Qwen2-VL built under ``<root>/models/base``. Its data
version is the folder's fingerprint.

`checkpoint` has one partition per experiment (``recipes/experiments/*.yaml``, ``assets.experiments``). A
materialisation fine-tunes the base model on the experiment's shards through the ``TrainingLauncher`` (torchrun /
deepspeed via Dagster Pipes, locally, on Ray or as a k8s Job) and publishes the next version
``<root>/models/checkpoints/<experiment>/v0001, v0002, ...`` (layout in ``ops.model.training.checkpoint``); it never
touches another experiment or an earlier version, and keeps the last ``keep_versions`` (pruning is logged). An
experiment with ``train: false`` (the untrained base model) publishes a version holding only ``lineage.json``; a
zero-shot experiment (an ``endpoint`` in its file) has no partition here: an endpoint answers its eval set.
Lineage: the inputs' data versions are the variant's shards and the base model, so Dagster marks exactly the
experiments on a rebuilt variant stale; the partition's data version hashes the experiment, shards and base model;
``lineage.json`` (also the `lineage` metadata) records the train scenes with their per-scene data and code versions.
Trainer checkpoints live in ``<root>/models/runs/<experiment>-<hashes>/``, so materialising an experiment again after
a crash resumes from its last saved step. It runs in the `gpu_train` pool.
"""

import base64
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from assets.experiments import Experiments, default_experiments, experiment_partitions, variant_mapping
from ops.core.fingerprint import content_hash
from ops.model.lineage import train_scenes
from ops.model.training.checkpoint import LOSS_CURVE_FILE, model_fingerprint
from ops.model.training.probe import probe_checkpoint
from ops.model.training.publish import PublishedCheckpoint, TrainingPlan, plan_training, publish_base, publish_training
from ops.model.training.versions import prune_versions
from ops.model.vlm import build_tiny_qwen2vl, read_model_type
from resources.storage import StorageRoot
from resources.training import PROJECT_DIR, BaseModelSource, TrainingLauncher, TrainingRun

SHARDS_KEY = dg.AssetKey("training_shards")
RECIPE_KEY = dg.AssetKey("experiment_recipe")
# Per-scene assets whose data and code versions a checkpoint's lineage records for each train scene.
SCENE_LINEAGE_ASSETS = ("raw_scan", "scene_manifest", "point_cloud", "instance_masks", "bev_image", "marked_frames")
CHECKPOINT_CHECKS = ("checkpoint_loads", "loss_decreased")


def _png_md(title: str, png: bytes) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})")


@dg.asset(kinds={"pytorch", "huggingface"}, group_name="training")
def base_model(
    context: dg.AssetExecutionContext, storage: StorageRoot, base_model_source: BaseModelSource
) -> dg.MaterializeResult:
    """The model folder fine-tuning starts from: a configured download used in place, or the tiny random Qwen2-VL
    with the real Qwen tokenizer built under `models/base` (same layout as a Hugging Face download)."""
    path = storage.base_model_dir(base_model_source.model_dir)
    if base_model_source.model_dir:
        source = "configured"
        context.log.info(f"using the configured model folder {path} (nothing copied)")
    else:
        source = "tiny-random-qwen2vl"
        build_tiny_qwen2vl(path)
    fingerprint = model_fingerprint(path)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "source": source,
            "model_type": read_model_type(path),
            "fingerprint": fingerprint,
        },
        data_version=dg.DataVersion(fingerprint),
    )


class CheckpointConfig(dg.Config):
    """Launchpad settings of the fine-tuning (the experiment's recipe itself is the partition's code)."""

    shards_dir: str = Field(default="", description="training shard set; empty = the experiment's variant's shards")
    keep_versions: int = Field(default=3, ge=1, description="checkpoint versions kept per experiment (older pruned)")


def scene_versions(instance: dg.DagsterInstance, scene_ids: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{scene: {asset: {data_version, code_version, run_id}}}`` of the per-scene assets' latest events as the
    instance recorded them (the raw scan's observed fingerprint included); None where it recorded nothing."""
    out = {}
    for scene_id in scene_ids:
        assets = {}
        for name in SCENE_LINEAGE_ASSETS:
            record = instance.get_latest_data_version_record(
                dg.AssetKey(name), is_source=name == "raw_scan", partition_key=scene_id
            )
            event = record.asset_event if record is not None else None
            tags = (event.tags or {}) if event is not None else {}
            assets[name] = {
                "data_version": tags.get("dagster/data_version"),
                "code_version": tags.get("dagster/code_version"),
                "run_id": record.run_id if record is not None else None,
            }
        out[scene_id] = assets
    return out


def _trained_metadata(plan: TrainingPlan, published: PublishedCheckpoint) -> dict[str, Any]:
    summary = published.summary
    return {
        "experiment": plan.experiment.name,
        "version": published.version,
        "path": dg.MetadataValue.path(str(published.path)),
        "weights": published.weights,
        "shards_data_version": plan.shards_version,
        "train_scenes": len(published.lineage["train_scenes"]),
        "base_model": dg.MetadataValue.path(str(plan.base_model)),
        "recipe": dg.MetadataValue.path(str(plan.recipe.path)),
        "recipe_hash": plan.recipe.hash,
        "code_commit": published.lineage["code_commit"],
        "global_step": summary["global_step"],
        "resumed_from": summary["resumed_from"] or "-",
        "first_loss": summary["first_loss"],
        "final_loss": summary["final_loss"],
        "tokens_per_second": round(summary["tokens_per_second"], 1),
        "samples_per_second": round(summary["samples_per_second"], 3),
        "trainable_parameters": summary["trainable_parameters"],
        "progress_messages": published.progress_messages,
        "loss_curve": _png_md("loss curve", (published.path / LOSS_CURVE_FILE).read_bytes()),
        "lineage": dg.MetadataValue.json(published.lineage),
    }


def _trained_checks(plan: TrainingPlan, published: PublishedCheckpoint, image_root: Path) -> list[dg.AssetCheckResult]:
    probe = probe_checkpoint(published.path, plan.recipe.recipe, image_root)
    if probe.error is not None:
        loads = dg.AssetCheckResult(check_name="checkpoint_loads", passed=False, metadata={"error": probe.error})
    else:
        loads = dg.AssetCheckResult(
            check_name="checkpoint_loads",
            passed=probe.passed,
            metadata={
                "weights": probe.weights,
                "missing": dg.MetadataValue.json(probe.missing),
                "loss_on_first_row": probe.loss,
            },
        )
    first, final = published.summary["first_loss"], published.summary["final_loss"]
    loss = dg.AssetCheckResult(
        check_name="loss_decreased",
        passed=final is not None and final < first,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"first_loss": first, "final_loss": final},
    )
    return [loads, loss]


def _base_checks() -> list[dg.AssetCheckResult]:
    note = {"note": "the base-model experiment: its checkpoint is the base model itself, nothing was trained"}
    return [dg.AssetCheckResult(check_name=name, passed=True, metadata=note) for name in CHECKPOINT_CHECKS]


def build_checkpoint_asset(experiments: Experiments) -> dg.AssetsDefinition:
    """The `checkpoint` asset with one partition per experiment of ``experiments`` that has no endpoint (zero-shot
    experiments train nothing and load no model), and its checks as specs."""
    experiments = {name: e for name, e in experiments.items() if e.endpoint is None}

    @dg.asset(
        name="checkpoint",
        partitions_def=experiment_partitions(experiments),
        deps=[
            dg.AssetDep(SHARDS_KEY, partition_mapping=variant_mapping(experiments, trained_only=True)),
            dg.AssetDep(RECIPE_KEY, partition_mapping=dg.StaticPartitionMapping({n: n for n in experiments})),
            base_model,
        ],
        pool="gpu_train",
        kinds={"pytorch", "deepspeed"},
        group_name="training",
        description="Fine-tuned VLM, one partition per experiment (recipes/experiments/): the next version "
        "models/checkpoints/<experiment>/<version>/ with the adapter or weights, lineage.json and loss_curve.png.",
        check_specs=[
            dg.AssetCheckSpec(
                "checkpoint_loads",
                asset="checkpoint",
                description="The checkpoint's files exist, it loads on its base model and gives a finite loss on a "
                "training row.",
            ),
            dg.AssetCheckSpec(
                "loss_decreased", asset="checkpoint", description="The last logged training loss is below the first."
            ),
        ],
    )
    def checkpoint(
        context: dg.AssetExecutionContext,
        config: CheckpointConfig,
        storage: StorageRoot,
        base_model_source: BaseModelSource,
        training_launcher: TrainingLauncher,
    ) -> dg.MaterializeResult:
        experiment = experiments[context.partition_key]
        base_dir = storage.base_model_dir(base_model_source.model_dir)
        experiment_dir = storage.models.experiment_checkpoints(experiment.name)
        if not experiment.trains:
            version, lineage = publish_base(experiment, base_dir, storage.models, PROJECT_DIR)
            pruned = _prune(context, experiment_dir, config.keep_versions)
            return dg.MaterializeResult(
                metadata={
                    "experiment": experiment.name,
                    "version": version,
                    "path": dg.MetadataValue.path(str(experiment_dir / version)),
                    "weights": "base_model",
                    "recipe_hash": experiment.recipe.hash,
                    "code_commit": lineage["code_commit"],
                    "pruned": dg.MetadataValue.json(pruned),
                    "lineage": dg.MetadataValue.json(lineage),
                },
                data_version=dg.DataVersion(content_hash([experiment.hash, lineage["base_model"]["fingerprint"]])),
                check_results=_base_checks(),
            )
        shards = (
            Path(config.shards_dir).resolve()
            if config.shards_dir
            else storage.dataset.train_shards(experiment.data_variant)
        )
        plan = plan_training(experiment, shards, base_dir, storage.models)
        scenes = train_scenes(shards)
        data_lineage = {"train_scenes": scenes, "scenes": scene_versions(context.instance, scenes)}
        run = TrainingRun(experiment.path, plan.base_model, plan.shards, plan.run_dir, storage.root_path)
        messages = training_launcher.launch(context, run)
        launcher = {"backend": training_launcher.backend, "launcher": training_launcher.launcher}
        published = publish_training(plan, messages, storage.models, launcher, PROJECT_DIR, data_lineage)
        context.log.info(f"{experiment.name}: published {published.version} at {published.path}")
        metadata = _trained_metadata(plan, published)
        metadata["pruned"] = dg.MetadataValue.json(_prune(context, experiment_dir, config.keep_versions))
        return dg.MaterializeResult(
            metadata=metadata,
            data_version=dg.DataVersion(plan.data_version),
            check_results=_trained_checks(plan, published, storage.root_path),
        )

    return checkpoint


def _prune(context: dg.AssetExecutionContext, experiment_dir: Path, keep: int) -> list[str]:
    removed = prune_versions(experiment_dir, keep)
    for version in removed:
        context.log.info(f"pruned {experiment_dir / version} (keeping the last {keep} versions)")
    return removed


checkpoint = build_checkpoint_asset(default_experiments())
