"""Training assets: `base_model` → `checkpoint` (and its checks), downstream of `training_shards`.

`base_model` is the model folder training starts from: a configured download (``BaseModelSource.model_dir``, env
``GPT4SCENE_BASE_MODEL``, used in place) or the tiny random Qwen2-VL built under ``<root>/models/base``. Its data
version is the folder's fingerprint.

`checkpoint` fine-tunes it on the train shards through the ``TrainingLauncher`` (torchrun / deepspeed via Dagster
Pipes, locally, on Ray or as a k8s Job) and publishes ``<root>/models/checkpoint`` (layout in
``ops.model.training.checkpoint``). Lineage: its code version is the recipe hash (recipe + DeepSpeed config), its
inputs' data versions are the shards' and the base model's, so Dagster marks it stale when either changes; its own data
version hashes the three. Trainer checkpoints live in ``<root>/models/runs/<recipe>-<shards>-<base>/``, so
materialising again after a crash resumes from the last saved step. It runs in the `gpu_train` pool.

``build_checkpoint_asset(recipe)`` makes the asset for a recipe (the code version must be known when the
definitions load); ``checkpoint`` is the one for ``DEFAULT_RECIPE``, the tiny CPU recipe of the demo.
"""

import base64
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from ops.model.training.checkpoint import LOSS_CURVE_FILE, model_fingerprint
from ops.model.training.probe import probe_checkpoint
from ops.model.training.publish import PublishedCheckpoint, TrainingPlan, plan_training, publish_training, read_lineage
from ops.model.training.recipe import load_recipe
from ops.model.vlm import build_tiny_qwen2vl, read_model_type
from resources.storage import StorageRoot
from resources.training import PROJECT_DIR, BaseModelSource, TrainingLauncher, TrainingRun

DEFAULT_RECIPE = PROJECT_DIR / "recipes" / "tiny_cpu_lora.yaml"
SHARDS_KEY = dg.AssetKey("training_shards")


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
    """Launchpad settings of the fine-tuning (the recipe itself is the asset's code)."""

    shards_dir: str = Field(default="", description="training shard set; empty = dataset/shards/train_<variant>")
    variant: str = Field(default="marked", description="image variant of the default shard set")


def _checkpoint_metadata(plan: TrainingPlan, published: PublishedCheckpoint) -> dict[str, Any]:
    summary = published.summary
    return {
        "path": dg.MetadataValue.path(str(published.path)),
        "weights": published.weights,
        "shards_data_version": plan.shards_version,
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


def build_checkpoint_asset(recipe_path: str | Path = DEFAULT_RECIPE) -> tuple[dg.AssetsDefinition, list[Any]]:
    """The `checkpoint` asset for ``recipe_path`` (code version = its hash) and its asset checks."""
    loaded = load_recipe(recipe_path)

    @dg.asset(
        name="checkpoint",
        deps=[SHARDS_KEY, base_model],
        code_version=loaded.hash,
        pool="gpu_train",
        kinds={"pytorch", "deepspeed"},
        group_name="training",
        description=f"Fine-tuned VLM ({loaded.recipe.finetuning_type}, recipe {loaded.path.name}): "
        "models/checkpoint with the adapter or weights, lineage.json and loss_curve.png.",
    )
    def checkpoint(
        context: dg.AssetExecutionContext,
        config: CheckpointConfig,
        storage: StorageRoot,
        base_model_source: BaseModelSource,
        training_launcher: TrainingLauncher,
    ) -> dg.MaterializeResult:
        shards = (
            Path(config.shards_dir).resolve() if config.shards_dir else storage.dataset.train_shards(config.variant)
        )
        base_dir = storage.base_model_dir(base_model_source.model_dir)
        plan = plan_training(loaded, shards, base_dir, storage.models)
        run = TrainingRun(loaded.path, plan.base_model, plan.shards, plan.run_dir, storage.root_path)
        messages = training_launcher.launch(context, run)
        launcher = {"backend": training_launcher.backend, "launcher": training_launcher.launcher}
        published = publish_training(plan, messages, storage.models.checkpoint, launcher, PROJECT_DIR)
        return dg.MaterializeResult(
            metadata=_checkpoint_metadata(plan, published), data_version=dg.DataVersion(plan.data_version)
        )

    @dg.asset_check(
        asset=checkpoint,
        description="The checkpoint's files exist, it loads on its base model and "
        "gives a finite loss on a training row.",
    )
    def checkpoint_loads(storage: StorageRoot) -> dg.AssetCheckResult:
        probe = probe_checkpoint(storage.models.checkpoint, loaded.recipe, storage.root_path)
        if probe.error is not None:
            return dg.AssetCheckResult(passed=False, metadata={"error": probe.error})
        return dg.AssetCheckResult(
            passed=probe.passed,
            metadata={
                "weights": probe.weights,
                "missing": dg.MetadataValue.json(probe.missing),
                "loss_on_first_row": probe.loss,
            },
        )

    @dg.asset_check(asset=checkpoint, description="The training loss fell: the last logged loss is below the first.")
    def loss_decreased(storage: StorageRoot) -> dg.AssetCheckResult:
        metrics = read_lineage(storage.models.checkpoint)["final_metrics"]
        first, final = metrics["first_loss"], metrics["final_loss"]
        return dg.AssetCheckResult(
            passed=final is not None and final < first,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"first_loss": first, "final_loss": final},
        )

    return checkpoint, [checkpoint_loads, loss_decreased]


checkpoint, checkpoint_checks = build_checkpoint_asset(DEFAULT_RECIPE)
