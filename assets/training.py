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
import json
import math
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from ops.core.fingerprint import content_hash
from ops.dataset.shards import read_manifest
from ops.model.training.checkpoint import (
    LINEAGE_FILE,
    LOSS_CURVE_FILE,
    code_commit,
    model_fingerprint,
    publish_checkpoint,
    run_name,
    weights_kind,
)
from ops.model.training.data import ShardDataset, row_encoder, training_collator
from ops.model.training.recipe import load_recipe
from ops.model.training.reporting import PROGRESS, SUMMARY
from ops.model.training.trainer import FINAL_DIR, answer_token_loss
from ops.model.vlm import build_tiny_qwen2vl, load_vlm, read_model_type
from resources.storage import StorageRoot
from resources.training import PROJECT_DIR, BaseModelSource, TrainingLauncher, TrainingRun

DEFAULT_RECIPE = PROJECT_DIR / "recipes" / "tiny_cpu_lora.yaml"
SHARDS_KEY = dg.AssetKey("training_shards")


def base_model_dir(storage: StorageRoot, source: BaseModelSource) -> Path:
    """The configured model folder, or ``<root>/models/base`` (the tiny model)."""
    return Path(source.model_dir).expanduser().resolve() if source.model_dir else storage.root_path / "models" / "base"


def checkpoint_dir(storage: StorageRoot) -> Path:
    """``<root>/models/checkpoint``: what evaluation loads."""
    return storage.root_path / "models" / "checkpoint"


def _png_md(title: str, png: bytes) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})")


@dg.asset(kinds={"pytorch", "huggingface"}, group_name="training")
def base_model(
    context: dg.AssetExecutionContext, storage: StorageRoot, base_model_source: BaseModelSource
) -> dg.MaterializeResult:
    """The model folder fine-tuning starts from: a configured download used in place, or the tiny random Qwen2-VL
    with the real Qwen tokenizer built under `models/base` (same layout as a Hugging Face download)."""
    path = base_model_dir(storage, base_model_source)
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


def _summary(messages: list[dict[str, Any]], trained_dir: Path) -> dict[str, Any]:
    """Rank 0's summary message (Pipes); a run that sent none (e.g. ran elsewhere) falls back to its file."""
    summaries = [m for m in messages if m.get("kind") == SUMMARY]
    if summaries:
        return {k: v for k, v in summaries[-1].items() if k != "kind"}
    return json.loads((trained_dir / "train_summary.json").read_text(encoding="utf-8"))


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
        default_shards = storage.dataset.train_shards(config.variant)
        shards = Path(config.shards_dir).resolve() if config.shards_dir else default_shards
        manifest = read_manifest(shards)
        model_dir = base_model_dir(storage, base_model_source)
        fingerprint = model_fingerprint(model_dir)
        run_dir = storage.root_path / "models" / "runs" / run_name(loaded.hash, manifest["data_version"], fingerprint)
        run = TrainingRun(loaded.path, model_dir, shards, run_dir, storage.root_path)
        messages = training_launcher.launch(context, run)
        trained = run_dir / FINAL_DIR
        summary = _summary(messages, trained)
        progress = [m for m in messages if m.get("kind") == PROGRESS]
        metrics = {k: v for k, v in summary.items() if k != "log_history"}
        lineage = {
            "shards": {"path": str(shards), "data_version": manifest["data_version"], "num_rows": manifest["num_rows"]},
            "base_model": {"path": str(model_dir), "fingerprint": fingerprint},
            "recipe": loaded.summary(),
            "code_commit": code_commit(PROJECT_DIR),
            "run_dir": str(run_dir),
            "launcher": {"backend": training_launcher.backend, "launcher": training_launcher.launcher},
            "final_metrics": metrics,
        }
        out = publish_checkpoint(trained, checkpoint_dir(storage), lineage)
        versions = [loaded.hash, manifest["data_version"], fingerprint]
        version = content_hash(versions)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(out)),
                "weights": weights_kind(out),
                "shards_data_version": manifest["data_version"],
                "base_model": dg.MetadataValue.path(str(model_dir)),
                "recipe": dg.MetadataValue.path(str(loaded.path)),
                "recipe_hash": loaded.hash,
                "code_commit": lineage["code_commit"],
                "global_step": summary["global_step"],
                "resumed_from": summary["resumed_from"] or "-",
                "first_loss": summary["first_loss"],
                "final_loss": summary["final_loss"],
                "tokens_per_second": round(summary["tokens_per_second"], 1),
                "samples_per_second": round(summary["samples_per_second"], 3),
                "trainable_parameters": summary["trainable_parameters"],
                "progress_messages": len(progress),
                "loss_curve": _png_md("loss curve", (out / LOSS_CURVE_FILE).read_bytes()),
                "lineage": dg.MetadataValue.json(lineage),
            },
            data_version=dg.DataVersion(version),
        )

    @dg.asset_check(
        asset=checkpoint,
        description="The checkpoint's files exist, it loads on its base model and "
        "gives a finite loss on a training row.",
    )
    def checkpoint_loads(storage: StorageRoot, base_model_source: BaseModelSource) -> dg.AssetCheckResult:
        out = checkpoint_dir(storage)
        missing = [n for n in (LINEAGE_FILE, LOSS_CURVE_FILE) if not (out / n).is_file()]
        try:
            kind = weights_kind(out)
        except FileNotFoundError as exc:
            return dg.AssetCheckResult(passed=False, metadata={"error": str(exc)})
        lineage = json.loads((out / LINEAGE_FILE).read_text(encoding="utf-8"))
        vlm = load_vlm(lineage["base_model"]["path"], adapter_dir=out) if kind == "lora" else load_vlm(out)
        dataset = ShardDataset(
            lineage["shards"]["path"],
            row_encoder(vlm, loaded.recipe.image_resolution, loaded.recipe.cutoff_len),
            image_root=storage.root_path,
        )
        import torch

        batch = training_collator(vlm.tokenizer.pad_token_id)([dataset[0]])
        labels = batch.pop("labels")
        with torch.inference_mode():
            loss = float(answer_token_loss(vlm.model(**batch), labels))
        return dg.AssetCheckResult(
            passed=not missing and math.isfinite(loss),
            metadata={"weights": kind, "missing": dg.MetadataValue.json(missing), "loss_on_first_row": loss},
        )

    @dg.asset_check(asset=checkpoint, description="The training loss fell: the last logged loss is below the first.")
    def loss_decreased(storage: StorageRoot) -> dg.AssetCheckResult:
        metrics = json.loads((checkpoint_dir(storage) / LINEAGE_FILE).read_text(encoding="utf-8"))["final_metrics"]
        first, final = metrics["first_loss"], metrics["final_loss"]
        return dg.AssetCheckResult(
            passed=final is not None and final < first,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"first_loss": first, "final_loss": final},
        )

    return checkpoint, [checkpoint_loads, loss_decreased]


checkpoint, checkpoint_checks = build_checkpoint_asset(DEFAULT_RECIPE)
