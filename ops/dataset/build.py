"""The dataset build: benchmark annotations + prepared scenes → samples, training shards and eval sets.

Three stages, each a pure function the Dagster assets (``assets/dataset.py``) and ``gpt4scene shards`` call:

1. ``build_task_samples``: for ``train`` and ``val``, the scenes listed in ``scannetv2_<split>.txt`` that have
   prepared artifacts (``<root>/scenes/<scene_id>/``) → ``Sample`` rows of every task, one file per variant;
2. ``build_training_shards``: the train samples of one variant → Parquet shards LLaMA-Factory trains on;
3. ``build_eval_set``: the val samples of one variant → Parquet shards carrying the evaluation fields, plus the
   Scan2Cap reference corpus.

Layout under ``dataset_dir`` (``<root>/dataset`` for the assets, ``--out`` for the CLI):

    samples/<split>_<variant>.jsonl      one ``Sample.to_dict()`` per line, sorted by sample_id
    samples/val_scan2cap_corpus.json     "<scene>|<objectId>" → capitalised reference captions
    samples/index.json                   written last: settings, variants, per-split scenes/stats/issues
    shards/train_<variant>/              Parquet shards (``ops.dataset.shards``): data/*.parquet, dataset_info.json,
                                         manifest.json
    eval/val_<variant>/                  the same layout with the ``eval`` column and ``scan2cap_corpus.json``
    sharegpt/train_<variant>.json        optional ShareGPT export (official GPT4Scene shape) + dataset_info.json

A listed scene without an artifact folder is "not prepared"; one whose artifacts do not load is left out with the
reason (``SceneInputError`` naming scene and file); both are listed in the index, the other scenes go on.
Annotation rows that do not parse are collected (file and row) into the index, never dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ops.core.atomic import canonical_json, staging_dir, write_bytes, write_json
from ops.core.errors import SceneInputError
from ops.core.fingerprint import content_hash, sha256_hex
from ops.core.layout import SCAN2CAP_CORPUS, DatasetLayout, StorageLayout
from ops.core.settings import setting
from ops.dataset.annotations import FILE_NAMES, read_split_scenes
from ops.dataset.benchmarks import load_benchmarks
from ops.dataset.manifest import ShardManifest
from ops.dataset.sample_builders import BuildSettings, build_samples
from ops.dataset.samples import SPLITS, TASKS, VARIANTS, Sample, read_samples_jsonl, samples_jsonl
from ops.dataset.samples_index import SamplesIndex, SplitReport, read_samples_index
from ops.dataset.scene_context import SceneContext, load_scene_context
from ops.dataset.shards import (
    DATASET_INFO,
    DEFAULT_SHARD_BYTES,
    IMAGE_MODES,
    ImageMode,
    export_sharegpt,
    iter_rows,
    sharegpt_dataset_info,
    write_shards,
)

MAX_LISTED_ISSUES = 50
MIB = 2**20
NOT_PREPARED = "not prepared"  # the reason of listed scenes without an artifact folder

Log = Callable[[str], None]


def _no_log(_: str) -> None:
    pass


def read_scan2cap_corpus(eval_dir: str | Path) -> dict[str, list[str]]:
    """The Scan2Cap reference corpus of an eval set: ``"<scene>|<objectId>"`` → captions."""
    path = Path(eval_dir) / SCAN2CAP_CORPUS
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SceneInputError(None, path, f"cannot read the Scan2Cap corpus: {exc}") from exc


# -- settings -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleSettings:
    """What the samples depend on: ``variants`` (image lists, see ``ops.dataset.samples``), tasks, RNG seed (templates,
    situations, answers and the shard row order) and the proposal IoU threshold for training targets."""

    variants: tuple[str, ...] = setting(
        ("marked",),
        "image variants to build: marked = BEV + marked frames (GPT4Scene); no_bev = marked frames only; "
        "unmarked = raw frames only ('video only', or train marked / evaluate unmarked)",
        choices=VARIANTS,
    )
    tasks: tuple[str, ...] = setting(TASKS, "benchmarks", choices=TASKS)
    seed: int = setting(0, "seeds template/situation/answer choices and the shard row order")
    iou_threshold: float = setting(0.5, "proposal/cluster targets need this 3D IoU with GT (train)")

    def __post_init__(self) -> None:
        if not self.variants or set(self.variants) - set(VARIANTS) or len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants must be distinct values of {VARIANTS}, got {self.variants!r}")
        BuildSettings(tasks=self.tasks, iou_threshold=self.iou_threshold)  # validates tasks and threshold


@dataclass(frozen=True)
class ShardSettings:
    """How shards are written: a target size per Parquet file, images as ``bytes`` or ``paths``, and (training
    shards) whether to also export the official ShareGPT JSON."""

    target_shard_bytes: int = setting(DEFAULT_SHARD_BYTES, "target size of one Parquet file", gt=0)
    image_mode: ImageMode = setting("bytes", "bytes (images embedded) or paths (relative to the root)")
    sharegpt_export: bool = setting(False, "also write dataset/sharegpt/train_<variant>.json (official ShareGPT JSON)")

    def __post_init__(self) -> None:
        if self.image_mode not in IMAGE_MODES:
            raise ValueError(f"image_mode must be one of {IMAGE_MODES}, got {self.image_mode!r}")
        if self.target_shard_bytes < 1:
            raise ValueError(f"target_shard_bytes must be >= 1, got {self.target_shard_bytes}")

    @classmethod
    def from_mib(cls, target_shard_mib: float, **options: Any) -> ShardSettings:
        """Settings whose target size is given in MiB, as the CLI and the launchpad ask for it (at least 1 byte)."""
        return cls(max(1, int(target_shard_mib * MIB)), **options)


# -- stage 1: samples ---------------------------------------------------------------------------------------------


@dataclass
class SplitScenes:
    """The scenes of one split: listed in the split file, loaded (``contexts``), or left out with a reason."""

    split: str
    listed: list[str]
    contexts: dict[str, SceneContext] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


def load_split_scenes(root: str | Path, scans_dir: str | Path, ann_dir: str | Path, split: str) -> SplitScenes:
    """Scene contexts of ``split``'s listed scenes that have prepared artifacts under ``<root>/scenes/``."""
    layout, scans_dir = StorageLayout(Path(root)), Path(scans_dir)
    listed = read_split_scenes(Path(ann_dir) / FILE_NAMES["split"].format(split=split))
    out = SplitScenes(split, listed)
    for scene_id in sorted(set(listed)):
        if not layout.scene(scene_id).dir.is_dir():
            out.unavailable[scene_id] = f"{NOT_PREPARED} (no scenes/<scene_id>/ folder)"
            continue
        try:
            out.contexts[scene_id] = load_scene_context(layout.root, scans_dir / scene_id)
        except SceneInputError as exc:  # one bad scene leaves only itself out
            out.unavailable[scene_id] = str(exc)
    return out


def build_task_samples(
    root: str | Path,
    scans_dir: str | Path,
    ann_dir: str | Path,
    dataset_dir: str | Path,
    settings: SampleSettings = SampleSettings(),
    log: Log = _no_log,
) -> SamplesIndex:
    """Build and write the samples of both splits for every variant (replacing ``samples/``); return the index.

    The index holds the settings, per split the scenes used and left out, annotation issues, per-task stats
    (records/kept/samples/dropped by reason) and rows per task, the sha256 of every file written, and the
    ``data_version`` (sha256 over those file hashes).
    """
    layout = DatasetLayout(Path(dataset_dir))
    settings_json = json.loads(json.dumps(asdict(settings)))  # tuples → lists, as the index file holds them
    reports: dict[str, SplitReport] = {}
    files: dict[str, bytes] = {}
    for split in SPLITS:
        scenes = load_split_scenes(root, scans_dir, ann_dir, split)
        benchmarks = load_benchmarks(ann_dir, split, settings.tasks, on_error="collect")
        log(
            f"{split}: {len(scenes.contexts)} of {len(scenes.listed)} listed scenes prepared; "
            f"{len(benchmarks.issues)} malformed annotation rows"
        )
        for variant in settings.variants:
            build = BuildSettings(split, variant, settings.tasks, settings.iou_threshold, settings.seed)
            result = build_samples(benchmarks, scenes.contexts, build)
            files[layout.samples_file(split, variant).name] = samples_jsonl(result.samples).encode("utf-8")
            if split == "val":
                files[layout.samples_corpus(split, SCAN2CAP_CORPUS).name] = canonical_json(
                    result.scan2cap_corpus
                ).encode("utf-8")
        # Stats depend on the split only (variants differ in their image lists), so the last variant's will do.
        report = reports[split] = SplitReport(
            sorted(scenes.contexts),
            dict(sorted(scenes.unavailable.items())),
            len(benchmarks.issues),
            [str(i) for i in benchmarks.issues[:MAX_LISTED_ISSUES]],
            result.stats,
            len(result.samples),
        )
        per_task = ", ".join(f"{task} {n}" for task, n in report.rows.items())
        log(f"{split}: {report.num_rows} samples per variant ({per_task})")
    hashes = {name: sha256_hex(content) for name, content in sorted(files.items())}
    index = SamplesIndex(settings_json, list(settings.variants), reports, hashes, content_hash(hashes))
    with staging_dir(layout.samples) as tmp:
        for name, content in files.items():
            write_bytes(tmp / name, content)
        write_json(tmp / layout.samples_index.name, index.to_dict())
    return index


# -- stages 2 and 3: shards ---------------------------------------------------------------------------------------


def _index_variants(layout: DatasetLayout, variants: Sequence[str] | None) -> tuple[SamplesIndex, list[str]]:
    index = read_samples_index(layout.dir)
    chosen = list(variants) if variants is not None else list(index.variants)
    missing = [v for v in chosen if v not in index.variants]
    if missing:
        raise ValueError(f"variants {missing} were not built by the last samples build ({index.variants})")
    return index, chosen


def _split_samples(
    layout: DatasetLayout, index: SamplesIndex, split: str, variant: str
) -> tuple[list[Sample], dict[str, Any]]:
    """The samples of one split and variant (refused when empty, naming the scenes left out) and the shard
    manifest's metadata about them."""
    samples = read_samples_jsonl(layout.samples_file(split, variant))
    if not samples:
        left_out = index.splits[split].unavailable_scenes
        raise ValueError(f"no {split} samples for variant {variant!r}; scenes left out: {left_out}")
    metadata = {
        "variant": variant,
        "samples_data_version": index.data_version,
        "sample_settings": index.settings,
        "stats": index.splits[split].to_dict()["stats"],
    }
    return samples, metadata


def _write_shard_sets(
    root: str | Path,
    layout: DatasetLayout,
    split: str,
    settings: ShardSettings,
    variants: Sequence[str] | None,
    log: Log,
    copied: Mapping[str, Path] | None = None,
    export: Callable[[str, list[Sample], int], None] | None = None,
) -> dict[str, ShardManifest]:
    """One shard set per variant of ``split``'s samples, with the ``copied`` files (name in the set → source);
    ``export`` then gets each variant's samples and the seed. Returns variant → manifest."""
    index, chosen = _index_variants(layout, variants)
    extra_files = {name: source.read_bytes() for name, source in (copied or {}).items()}
    seed = index.seed
    manifests = {}
    for variant in chosen:
        samples, metadata = _split_samples(layout, index, split, variant)
        out_dir = layout.train_shards(variant) if split == "train" else layout.eval_set(variant)
        manifests[variant] = manifest = write_shards(
            samples,
            out_dir,
            root,
            split,
            f"gpt4scene_{split}_{variant}",
            settings.image_mode,
            settings.target_shard_bytes,
            seed,
            metadata,
            extra_files=extra_files,
        )
        if export is not None:
            export(variant, samples, seed)
        log(
            f"{split}_{variant}: {manifest.num_rows} rows in {len(manifest.files)} shards, "
            f"data version {manifest.data_version[:12]}"
        )
    return manifests


def build_training_shards(
    root: str | Path,
    dataset_dir: str | Path,
    settings: ShardSettings = ShardSettings(),
    variants: Sequence[str] | None = None,
    log: Log = _no_log,
) -> dict[str, ShardManifest]:
    """Shard the train samples of ``variants`` (default: every variant of the last samples build) into
    ``shards/train_<variant>/``; return variant → manifest. Row order is seeded by the samples' seed."""
    layout = DatasetLayout(Path(dataset_dir))

    def export(variant: str, samples: list[Sample], seed: int) -> None:
        path = layout.sharegpt(variant)
        export_sharegpt(samples, path, seed=seed)
        info_path = path.parent / DATASET_INFO
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        info.update(sharegpt_dataset_info(f"gpt4scene_train_{variant}_json", path.name))
        write_json(info_path, dict(sorted(info.items())))

    return _write_shard_sets(
        root, layout, "train", settings, variants, log, export=export if settings.sharegpt_export else None
    )


def build_eval_set(
    root: str | Path,
    dataset_dir: str | Path,
    settings: ShardSettings = ShardSettings(),
    variants: Sequence[str] | None = None,
    log: Log = _no_log,
) -> dict[str, ShardManifest]:
    """Shard the val samples of ``variants`` into ``eval/val_<variant>/`` (``eval`` column, ``scan2cap_corpus.json``);
    return variant → manifest."""
    layout = DatasetLayout(Path(dataset_dir))
    corpus = {SCAN2CAP_CORPUS: layout.samples_corpus("val", SCAN2CAP_CORPUS)}
    return _write_shard_sets(root, layout, "val", settings, variants, log, copied=corpus)


# The ``eval`` JSON of every val row, by task (``ops.dataset.samples``; what ``ops.metrics`` scoring needs).
EVAL_FIELDS: dict[str, tuple[str, ...]] = {
    "scanqa": ("question_id", "refs", "object_ids"),
    "sqa3d": ("question_id", "refs", "sqa_type", "question_type"),
    "scanrefer": (
        "object_id",
        "ann_id",
        "gt_box",
        "unique",
        "pred_id",
        "iou",
        "proposal_boxes",
        "proposal_boxes_sha256",
    ),
    "multi3drefer": ("ann_id", "eval_type", "object_ids", "gt_boxes", "proposal_boxes", "proposal_boxes_sha256"),
    "scan2cap": ("key", "object_id", "refs", "pred_id", "iou", "gt_box", "proposal_boxes", "proposal_boxes_sha256"),
}


def eval_set_problems(eval_dir: str | Path, limit: int = 20) -> tuple[int, list[str]]:
    """(rows read, up to ``limit`` problems): rows whose ``eval`` lacks a field of ``EVAL_FIELDS``, and Scan2Cap
    rows whose key is not in the set's corpus."""
    corpus = read_scan2cap_corpus(eval_dir)
    rows, problems = 0, []
    for row in iter_rows(eval_dir, columns=("sample_id", "task", "eval")):
        rows += 1
        fields = row["eval"] or {}
        missing = [name for name in EVAL_FIELDS[row["task"]] if name not in fields]
        if missing:
            problems.append(f"{row['sample_id']}: eval lacks {missing}")
        elif row["task"] == "scan2cap" and fields["key"] not in corpus:
            problems.append(f"{row['sample_id']}: {fields['key']!r} not in {SCAN2CAP_CORPUS}")
    return rows, problems[:limit]


def combined_version(manifests: Mapping[str, ShardManifest]) -> str:
    """One variant: its shard set's data version; several: sha256 of the canonical {variant: data version}."""
    versions = {variant: m.data_version for variant, m in sorted(manifests.items())}
    if len(versions) == 1:
        return next(iter(versions.values()))
    return content_hash(versions)


@dataclass
class DatasetBuild:
    """What ``build_dataset`` wrote: the samples index and the manifests of every shard set."""

    samples: SamplesIndex
    training: dict[str, ShardManifest]
    eval: dict[str, ShardManifest]


def build_dataset(
    root: str | Path,
    scans_dir: str | Path,
    ann_dir: str | Path,
    dataset_dir: str | Path,
    sample_settings: SampleSettings = SampleSettings(),
    shard_settings: ShardSettings = ShardSettings(),
    log: Log = _no_log,
) -> DatasetBuild:
    """All three stages in order (what the ``dataset_job`` materialises), for the command line."""
    index = build_task_samples(root, scans_dir, ann_dir, dataset_dir, sample_settings, log)
    training = build_training_shards(root, dataset_dir, shard_settings, log=log)
    evaluation = build_eval_set(root, dataset_dir, shard_settings, log=log)
    return DatasetBuild(index, training, evaluation)
