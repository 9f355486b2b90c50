"""Dataset assets: `task_samples` → `training_shards` and `eval_sets`, over every prepared scene.

Downstream of the per-scene visual prompts (all `scenes` partitions). Each wraps one stage of `ops.dataset.build`
and writes under the storage root's `dataset/` folder (layout in `ops.dataset.build`). `task_samples` (unpartitioned)
holds the sample settings (variants, seed, IoU threshold, tasks); `training_shards` and `eval_sets` have one
partition per data variant (marked, no_bev, unmarked; ``assets.experiments``), each sharding that variant of the last
samples build with its own shard settings. Data versions are content hashes: the samples files' for `task_samples`,
the variant's shard manifest's for a shard-set partition, so Dagster marks stale exactly the checkpoints (and
evaluations) of the experiments on a rebuilt variant.
"""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from assets.experiments import variant_partitions
from assets.raw_scenes import scene_manifest
from ops.core.layout import MANIFEST
from ops.core.settings import setting_field
from ops.dataset.build import (
    NOT_PREPARED,
    SampleSettings,
    ShardSettings,
    build_eval_set,
    build_task_samples,
    build_training_shards,
    eval_set_problems,
    read_samples_index,
    read_samples_jsonl,
)
from ops.dataset.manifest import ShardManifest
from ops.dataset.preview import sample_markdown
from ops.dataset.samples_index import SamplesIndex
from ops.dataset.shards import iter_rows, placeholder_mismatches, verify_shards
from resources.config import settings_config
from resources.storage import StorageRoot

# Every partition of these per-scene assets feeds the dataset (unpartitioned → dynamic: all partitions).
SCENE_ASSETS = [
    scene_manifest.key,
    dg.AssetKey("instance_masks"),
    dg.AssetKey("bev_image"),
    dg.AssetKey("marked_frames"),
]
MIB = 2**20


class TaskSamplesConfig(settings_config(SampleSettings)):
    """Launchpad settings of the samples (``SampleSettings``: GPT4Scene's marked BEV + frames, IoU 0.5)."""

    def settings(self) -> SampleSettings:
        return SampleSettings(**self.settings_values())


_SHARD_SIZE = setting_field(ShardSettings, "target_shard_bytes")


class ShardsConfig(settings_config(ShardSettings, names=("image_mode",))):
    """Launchpad settings of a shard set."""

    target_shard_mb: float = Field(default=_SHARD_SIZE.default / MIB, gt=0, description=f"{_SHARD_SIZE.help}, MiB")

    def settings(self) -> ShardSettings:
        values = self.settings_values()
        return ShardSettings.from_mib(values.pop("target_shard_mb"), **values)


class TrainingShardsConfig(settings_config(ShardSettings, names=("sharegpt_export",), base=ShardsConfig)):
    """Launchpad settings of the training shards (plus the optional ShareGPT JSON export)."""


class EvalSetsConfig(ShardsConfig):
    """Launchpad settings of the eval sets."""


# -- metadata -----------------------------------------------------------------------------------------------------


def _stats_table(index: SamplesIndex) -> str:
    lines = ["| split | task | records | kept | rows | dropped | dropped by reason |", "|---|---|---|---|---|---|---|"]
    for split, report in index.splits.items():
        for task, stats in report.stats.items():
            reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(stats.dropped_by_reason.items())) or "-"
            lines.append(
                f"| {split} | {task} | {stats.records} | {stats.kept} | {stats.samples} | {stats.dropped} | {reasons} |"
            )
    return "\n".join(lines)


def _files_table(manifests: dict[str, ShardManifest]) -> str:
    lines = ["| set | file | rows | MiB | sha256 |", "|---|---|---|---|---|"]
    for variant, manifest in manifests.items():
        for entry in (*manifest.files, *manifest.extra_files):
            rows = "" if entry.rows is None else entry.rows
            lines.append(f"| {variant} | `{entry.path}` | {rows} | {entry.bytes / MIB:.2f} | `{entry.sha256[:12]}` |")
    return "\n".join(lines)


def _shards_metadata(
    storage: StorageRoot, manifests: dict[str, ShardManifest], folder: Callable[[str], Path]
) -> dict[str, Any]:
    first_variant = next(iter(manifests))
    preview = next(iter_rows(folder(first_variant)))
    return {
        "data_version": dg.MetadataValue.text(manifests[first_variant].data_version),
        "num_rows": sum(m.num_rows for m in manifests.values()),
        "num_files": sum(len(m.files) for m in manifests.values()),
        "total_mib": round(sum(f.bytes for m in manifests.values() for f in m.files) / MIB, 3),
        "rows_per_task": dg.MetadataValue.json({v: m.tasks for v, m in manifests.items()}),
        "data_versions": dg.MetadataValue.json({v: m.data_version for v, m in manifests.items()}),
        "paths": dg.MetadataValue.json({v: str(folder(v)) for v in manifests}),
        "shard_files": dg.MetadataValue.md(_files_table(manifests)),
        "image_mode": manifests[first_variant].image_mode,
        "preview": dg.MetadataValue.md(
            f"*{first_variant}*, first row\n\n" + sample_markdown(preview, storage.root_path)
        ),
    }


# -- assets -------------------------------------------------------------------------------------------------------


@dg.asset(deps=SCENE_ASSETS, kinds={"python", "json"}, group_name="dataset")
def task_samples(
    context: dg.AssetExecutionContext, config: TaskSamplesConfig, storage: StorageRoot
) -> dg.MaterializeResult:
    """One (images, prompt, answer) row per benchmark question/description, train and val, per image variant:
    `dataset/samples/<split>_<variant>.jsonl` and `index.json` (scenes, stats, dropped rows by reason)."""
    started = time.perf_counter()
    index = build_task_samples(
        storage.root_path,
        storage.scans_dir,
        storage.annotations_dir,
        storage.dataset_dir,
        config.settings(),
        log=context.log.info,
    )
    splits = index.splits
    train = read_samples_jsonl(storage.dataset.samples_file("train", index.variants[0]))
    preview = next((s for s in train if s.task == "scanrefer"), train[0] if train else None)
    metadata: dict[str, Any] = {
        "data_version": dg.MetadataValue.text(index.data_version),
        "path": dg.MetadataValue.path(str(storage.dataset.samples)),
        "variants": dg.MetadataValue.json(index.variants),
        **{f"{split}_rows": report.num_rows for split, report in splits.items()},
        **{f"{split}_scenes": len(report.scenes) for split, report in splits.items()},
        "rows_per_task": dg.MetadataValue.json({split: report.rows for split, report in splits.items()}),
        "kept_dropped": dg.MetadataValue.md(_stats_table(index)),
        "kept_dropped_json": dg.MetadataValue.json({split: r.to_dict()["stats"] for split, r in splits.items()}),
        "unavailable_scenes": dg.MetadataValue.json({s: r.unavailable_scenes for s, r in splits.items()}),
        "annotation_issues": dg.MetadataValue.json({s: r.annotation_issues_listed for s, r in splits.items()}),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if preview is not None:
        row = {
            "task": preview.task,
            "sample_id": preview.sample_id,
            "images": list(preview.images),
            "messages": preview.messages(),
        }
        metadata["preview"] = dg.MetadataValue.md(sample_markdown(row, storage.root_path))
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(index.data_version))


@dg.asset(deps=[task_samples], partitions_def=variant_partitions, kinds={"python", "parquet"}, group_name="dataset")
def training_shards(
    context: dg.AssetExecutionContext, config: TrainingShardsConfig, storage: StorageRoot
) -> dg.MaterializeResult:
    """Parquet shards of the train samples of one variant (`dataset/shards/train_<variant>/`), with the
    `dataset_info.json` entry LLaMA-Factory trains on and a manifest whose hash is the data version."""
    return _shard_set(context, storage, build_training_shards, config.settings(), storage.dataset.train_shards)


@dg.asset(deps=[task_samples], partitions_def=variant_partitions, kinds={"python", "parquet"}, group_name="dataset")
def eval_sets(context: dg.AssetExecutionContext, config: EvalSetsConfig, storage: StorageRoot) -> dg.MaterializeResult:
    """Parquet shards of the val samples of one variant (`dataset/eval/val_<variant>/`): every row's `eval` JSON
    holds what scoring needs (GT/proposal boxes, eval types, question types, unique/multiple), plus the Scan2Cap
    corpus."""
    return _shard_set(context, storage, build_eval_set, config.settings(), storage.dataset.eval_set)


def _shard_set(
    context: dg.AssetExecutionContext,
    storage: StorageRoot,
    build: Callable[..., dict[str, ShardManifest]],
    settings: ShardSettings,
    folder: Callable[[str], Path],
) -> dg.MaterializeResult:
    """Build the partition's variant with ``build`` (train shards or eval set); its manifest hash is the version."""
    started = time.perf_counter()
    variant = context.partition_key
    manifests = build(storage.root_path, storage.dataset_dir, settings, variants=[variant], log=context.log.info)
    metadata = _shards_metadata(storage, manifests, folder)
    metadata["seconds"] = round(time.perf_counter() - started, 2)
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(manifests[variant].data_version))


# -- checks -------------------------------------------------------------------------------------------------------


@dg.asset_check(
    asset=task_samples,
    description="Every annotation record is either a sample or a counted drop, "
    "every task gave training rows, and no prepared scene failed to load.",
)
def samples_account_for_every_record(storage: StorageRoot) -> dg.AssetCheckResult:
    index = read_samples_index(storage.dataset_dir)
    unbalanced, empty, broken = [], [], {}
    for split, report in index.splits.items():
        for task, stats in report.stats.items():
            if stats.records != stats.kept + stats.dropped:
                unbalanced.append(f"{split}/{task}")
            if split == "train" and stats.samples == 0:
                empty.append(task)
        # Prepared scenes whose artifacts did not load (scenes never prepared are expected and only listed).
        broken.update({s: r for s, r in report.unavailable_scenes.items() if not r.startswith(NOT_PREPARED)})
    return dg.AssetCheckResult(
        passed=not unbalanced and not empty and not broken,
        severity=dg.AssetCheckSeverity.ERROR if unbalanced else dg.AssetCheckSeverity.WARN,
        metadata={
            "unbalanced": dg.MetadataValue.json(unbalanced),
            "tasks_without_train_rows": dg.MetadataValue.json(empty),
            "broken_scenes": dg.MetadataValue.json(broken),
            "annotation_issues": sum(r.annotation_issues for r in index.splits.values()),
        },
    )


def shard_set_check(
    storage: StorageRoot,
    variant: str,
    folder: Callable[[str], Path],
    extra: Callable[[Path], tuple[int, list[str]]] | None = None,
) -> dg.AssetCheckResult:
    """The shard-set check of one variant: files match the manifest, placeholders match images, and ``extra``'s
    problems (the eval sets' fields)."""
    out = folder(variant)
    rows: dict[str, int] = {}
    if not (out / MANIFEST).is_file():
        found = [f"{out}: no shard set"]
    else:
        found = verify_shards(out, storage.root_path)
        if not found:  # the rows are read only from files that match the manifest
            rows[variant], mismatched = placeholder_mismatches(out)
            found += mismatched + (extra(out)[1] if extra is not None else [])
    problems = {variant: found} if found else {}
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"rows_checked": dg.MetadataValue.json(rows), "problems": dg.MetadataValue.json(problems)},
    )


def _shard_set_check_definition(
    asset: dg.AssetsDefinition,
    description: str,
    folder: Callable[[StorageRoot], Callable[[str], Path]],
    extra: Callable[[Path], tuple[int, list[str]]] | None = None,
) -> dg.AssetChecksDefinition:
    """The blocking, per-variant `<asset>_verified` check of a shard-set asset (``shard_set_check``)."""

    @dg.asset_check(
        asset=asset,
        name=f"{asset.key.path[-1]}_verified",
        partitions_def=variant_partitions,
        blocking=True,
        description=description,
    )
    def verified(context: dg.AssetCheckExecutionContext, storage: StorageRoot) -> dg.AssetCheckResult:
        return shard_set_check(storage, context.partition_key, folder(storage), extra)

    return verified


training_shards_verified = _shard_set_check_definition(
    training_shards,
    "Files match the manifest (sha256, rows, data version) and every row has as many <image> placeholders as images.",
    lambda storage: storage.dataset.train_shards,
)
eval_sets_verified = _shard_set_check_definition(
    eval_sets,
    "Files match the manifest, placeholders match images, every row carries its task's eval fields and Scan2Cap "
    "keys are in the corpus.",
    lambda storage: storage.dataset.eval_set,
    eval_set_problems,
)


DATASET_ASSETS = [task_samples, training_shards, eval_sets]
DATASET_CHECKS = [samples_account_for_every_record, training_shards_verified, eval_sets_verified]
