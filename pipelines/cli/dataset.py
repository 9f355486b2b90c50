"""Dataset commands: ``shards`` (samples, training shards, eval sets) and ``score`` (the five benchmarks)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pipelines.cli.common import Command, step


def cmd_shards(args: argparse.Namespace) -> int:
    from ops.core.errors import SceneInputError
    from ops.core.settings import sequence_or_default
    from ops.dataset.build import SampleSettings, ShardSettings, build_dataset

    annotations = Path(args.annotations).resolve()
    scans = Path(args.scans).resolve() if args.scans else annotations.parent / "scans"
    started = time.perf_counter()
    try:
        variants = sequence_or_default(args.variants, SampleSettings, "variants")
        samples = SampleSettings(variants, seed=args.seed, iou_threshold=args.iou_threshold)
        shards = ShardSettings.from_mib(args.shard_mb, image_mode=args.image_mode, sharegpt_export=args.sharegpt_export)
        build = build_dataset(
            Path(args.prepared).resolve(),
            scans,
            annotations,
            Path(args.out).resolve(),
            samples,
            shards,
            log=lambda message: print(f"   {message}", flush=True),
        )
    except (SceneInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for split, report in build.samples.splits.items():
        for scene_id, reason in report.unavailable_scenes.items():
            print(f"   {split}: left out {scene_id}: {reason}", file=sys.stderr)
    step(
        f"wrote {Path(args.out).resolve()} in {time.perf_counter() - started:.1f} s "
        f"(samples data version {build.samples.data_version[:12]})"
    )
    return 0


def shards_arguments(parser: argparse.ArgumentParser) -> None:
    from ops.core.settings import add_setting_arguments, setting_field
    from ops.dataset.build import MIB, SampleSettings, ShardSettings

    parser.add_argument("--prepared", required=True, help="storage root holding scenes/<scene_id>/ artifacts")
    parser.add_argument("--annotations", required=True, help="benchmark JSONs, scannetv2_<split>.txt, label TSV")
    parser.add_argument("--scans", default=None, help="raw scene folders (GT boxes); default: ANNOTATIONS/../scans")
    parser.add_argument("--out", required=True, help="dataset folder: samples/, shards/train_<variant>/, eval/")
    add_setting_arguments(
        parser, SampleSettings, {"variants": "--variant", "seed": "--seed", "iou_threshold": "--iou-threshold"}
    )
    size = setting_field(ShardSettings, "target_shard_bytes")
    parser.add_argument("--shard-mb", type=float, default=size.default / MIB, help=f"{size.help}, MiB")
    add_setting_arguments(parser, ShardSettings, {"image_mode": "--image-mode", "sharegpt_export": "--sharegpt"})


def cmd_score(args: argparse.Namespace) -> int:
    from ops.core.atomic import write_json
    from ops.core.errors import SceneInputError
    from ops.metrics import JavaNotFoundError
    from ops.metrics.eval_sets import load_any_eval_set
    from ops.metrics.predictions import read_predictions
    from ops.metrics.report import comparison_table
    from ops.metrics.suite import check_complete, score_suite

    predictions = Path(args.predictions)
    tasks = args.benchmark or None
    try:
        suite = load_any_eval_set(args.eval_set, args.root)
        answers = read_predictions(predictions, args.task)
        missing = check_complete(
            suite, answers, predictions, lambda m: print(m, file=sys.stderr), tasks, args.require_complete
        )
        scores = score_suite(suite, answers, scanrefer_fallback=args.scanrefer_fallback, tasks=tasks)
    except (SceneInputError, ValueError, JavaNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else (predictions if predictions.is_dir() else predictions.parent) / "scores.json"
    record = {
        "eval_set": str(Path(args.eval_set).resolve()),
        "format": suite.kind,
        "items": suite.counts(),
        "scores": scores,
    }
    write_json(out, {**record, "missing_predictions": missing} if missing else record)
    print(comparison_table({"score": scores}))
    print(json.dumps(scores, indent=2))
    step(f"wrote {out}")
    return 0


def score_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--predictions",
        required=True,
        help="predictions .jsonl, a GPT4Scene predictions_chunk_<i>.json, or a folder of qwenvl_<task>/ folders",
    )
    parser.add_argument("--eval-set", required=True, help="our eval set folder, or GPT4Scene's evaluate/annotation/")
    parser.add_argument("--root", default=None, help="storage root (default: the one the eval set sits in)")
    parser.add_argument(
        "--task", default=None, help="task of a single GPT4Scene predictions file outside qwenvl_<task>/"
    )
    parser.add_argument(
        "--benchmark",
        action="append",
        choices=["scanqa", "sqa3d", "scanrefer", "multi3drefer", "scan2cap"],
        help="score only these (repeatable; default all)",
    )
    parser.add_argument(
        "--scanrefer-fallback",
        choices=["zero", "random", "miss"],
        default="zero",
        help="ScanRefer answer without an ID: proposal 0 (GPT4Scene), random (Chat-Scene), or a miss",
    )
    parser.add_argument(
        "--require-complete",
        action="store_true",
        help="refuse predictions that miss eval rows (default: warn, score them as misses)",
    )
    parser.add_argument("--out", default=None, help="scores JSON (default scores.json beside the predictions)")


COMMANDS = {
    "shards": Command(
        "samples, Parquet training shards and eval sets from prepared scenes", shards_arguments, cmd_shards
    ),
    "score": Command(
        "score predictions on the five benchmarks (ours or GPT4Scene's formats)", score_arguments, cmd_score
    ),
}
