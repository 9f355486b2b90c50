"""Evaluation assets: `predictions` (the checkpoint and the base model answering the eval sets) → `eval_scores`.

Runs: the fine-tuned checkpoint on every eval-set variant present (`finetuned_marked`, `finetuned_no_bev`,
`finetuned_unmarked`: the paper's ablations, same checkpoint) and the untrained base model on `marked`
(`base_marked`). Layout under the storage root:

    evaluation/predictions/<run>/predictions.jsonl       merged, sorted by sample id (ops.model.inference format)
    evaluation/predictions/<run>/predictions_chunk_*     the chunk files a run resumes from
    evaluation/predictions/<run>/run.json                model fingerprint, eval-set version, settings, complete flag
    evaluation/predictions/index.json                    written last: the runs of the last materialisation
    evaluation/scores/<run>/<benchmark>.json             one JSON per benchmark (DESIGN §3)
    evaluation/scores/summary.json                       written last: every run's scores

A run resumes its chunk files only when its model fingerprint, eval-set data version and generation settings are
unchanged; otherwise its folder is cleared first. Data versions are content hashes of the merged predictions and of
the scores.
"""

import json
import shutil
import time
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from assets.training import base_model_dir, checkpoint_dir
from ops.core.atomic import write_json, write_text
from ops.core.fingerprint import content_hash, file_sha256
from ops.dataset.samples import VARIANTS
from ops.dataset.shards import read_manifest
from ops.metrics.captions import CaptionScorer
from ops.metrics.eval_sets import load_eval_set, read_predictions, score_suite
from ops.metrics.report import HEADLINE, ablation_table, comparison_table, headline, missing_benchmarks
from ops.model.inference import (
    InferenceSettings,
    checkpoint_model_dirs,
    chunk_command,
    chunk_path,
    merge_predictions,
    model_fingerprint,
    read_eval_rows,
    read_prediction_rows,
    run_chunk_processes,
    run_inference,
)
from resources.storage import StorageRoot
from resources.training import BaseModelSource

PREDICTIONS_DIR = "evaluation/predictions"
SCORES_DIR = "evaluation/scores"
REFERENCE_RUN, BASE_RUN = "finetuned_marked", "base_marked"


class PredictionsConfig(dg.Config):
    """Launchpad settings of inference (defaults as GPT4Scene's `infer.py`: greedy, 128 new tokens, 512 px)."""

    variants: list[str] = Field(
        default=list(VARIANTS), description="eval-set variants the checkpoint answers (those not built are skipped)"
    )
    include_base_model: bool = Field(default=True, description="also answer the marked set with the untrained base")
    batch_size: int = Field(default=8, ge=1)
    max_new_tokens: int = Field(default=128, ge=1)
    image_max_side: int = Field(default=512, ge=1, description="long side the images are capped at, px")
    num_chunks: int = Field(default=1, ge=1, description="split each run over this many processes (one per GPU)")
    limit: int = Field(default=0, ge=0, description="only the first N rows of each eval set (0: all)")

    def settings(self) -> InferenceSettings:
        return InferenceSettings(
            self.batch_size, self.max_new_tokens, self.image_max_side, self.num_chunks, 0, self.limit or None
        )


def _runs(
    storage: StorageRoot, source: BaseModelSource, config: PredictionsConfig
) -> list[tuple[str, str, Path, Path | None]]:
    """(run name, variant, model folder, adapter folder) of every run whose eval set exists."""
    base_dir = base_model_dir(storage, source)
    model_dir, adapter_dir = checkpoint_model_dirs(base_dir, checkpoint_dir(storage))
    runs = [
        (f"finetuned_{v}", v, model_dir, adapter_dir)
        for v in config.variants
        if (storage.dataset_dir / "eval" / f"val_{v}" / "manifest.json").is_file()
    ]
    if config.include_base_model and any(v == "marked" for _, v, _, _ in runs):
        runs.append((BASE_RUN, "marked", base_dir, None))
    if not runs:
        raise FileNotFoundError(f"no eval set of variants {config.variants} under {storage.dataset_dir / 'eval'}")
    return runs


def _answer_run(
    context: dg.AssetExecutionContext,
    storage: StorageRoot,
    settings: InferenceSettings,
    run: str,
    variant: str,
    model_dir: Path,
    adapter_dir: Path | None,
    vlms: dict,
) -> dict[str, Any]:
    eval_dir = storage.dataset_dir / "eval" / f"val_{variant}"
    out_dir = storage.root_path / PREDICTIONS_DIR / run
    identity = {
        "model": model_fingerprint(model_dir, adapter_dir),
        "eval_set": read_manifest(eval_dir)["data_version"],
        "settings": {k: v for k, v in settings.__dict__.items() if k != "chunk_index"},
    }
    run_file = out_dir / "run.json"
    previous = json.loads(run_file.read_text()) if run_file.is_file() else None
    if previous is None or {k: previous.get(k) for k in identity} != identity:
        shutil.rmtree(out_dir, ignore_errors=True)  # another model, eval set or settings: nothing to resume
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "run.json", {**identity, "complete": False})
    started = time.perf_counter()
    if settings.num_chunks == 1:
        key = (model_dir, adapter_dir)
        if key not in vlms:
            from ops.model.vlm import load_vlm

            vlms.clear()  # one model in memory at a time
            vlms[key] = load_vlm(model_dir, adapter_dir)
        stats = run_inference(
            vlms[key], eval_dir, chunk_path(out_dir, 1, 0), settings, storage.root_path, log=context.log.info
        )
        generated = stats.generated
    else:
        import torch

        before = sum(
            len(read_prediction_rows(chunk_path(out_dir, settings.num_chunks, i))) for i in range(settings.num_chunks)
        )
        commands = [
            chunk_command(
                model_dir,
                adapter_dir,
                eval_dir,
                out_dir,
                InferenceSettings(**{**settings.__dict__, "chunk_index": i}),
                storage.root_path,
            )
            for i in range(settings.num_chunks)
        ]
        run_chunk_processes(commands, out_dir / "logs", torch.cuda.device_count(), log=context.log.info)
        generated = (
            sum(
                len(read_prediction_rows(chunk_path(out_dir, settings.num_chunks, i)))
                for i in range(settings.num_chunks)
            )
            - before
        )
    seconds = time.perf_counter() - started
    expected = [r.sample_id for r in read_eval_rows(eval_dir)[: settings.limit]]
    merged = out_dir / "predictions.jsonl"
    rows = merge_predictions(
        [chunk_path(out_dir, settings.num_chunks, i) for i in range(settings.num_chunks)], merged, expected
    )
    write_json(out_dir / "run.json", {**identity, "complete": True, "rows": rows})
    context.log.info(f"{run}: {rows} predictions ({generated} new in {seconds:.1f} s)")
    return {
        "variant": variant,
        "rows": rows,
        "generated": generated,
        "seconds": round(seconds, 2),
        "samples_per_second": round(generated / seconds, 3) if generated and seconds > 0 else None,
        "predictions": str(merged),
        "sha256": file_sha256(merged),
        "model": identity["model"],
        "eval_set": identity["eval_set"],
        "adapter": str(adapter_dir) if adapter_dir else None,
    }


def _answers_preview(path: Path, per_task: int = 2) -> str:
    lines = ["| task | sample | answer |", "|---|---|---|"]
    seen: dict[str, int] = {}
    for row in read_prediction_rows(path):
        if seen.get(row["task"], 0) < per_task:
            seen[row["task"]] = seen.get(row["task"], 0) + 1
            answer = row["answer"].replace("|", "\\|").replace("\n", " ")[:120]
            lines.append(f"| {row['task']} | `{row['sample_id']}` | {answer} |")
    return "\n".join(lines)


@dg.asset(deps=["checkpoint", "base_model", "eval_sets"], kinds={"pytorch", "json"}, group_name="evaluation")
def predictions(
    context: dg.AssetExecutionContext,
    config: PredictionsConfig,
    storage: StorageRoot,
    base_model_source: BaseModelSource,
) -> dg.MaterializeResult:
    """Greedy answers of the fine-tuned checkpoint on every eval-set variant and of the untrained base model on the
    marked set: `evaluation/predictions/<run>/predictions.jsonl` (batched, resumable, optionally chunked)."""
    settings = config.settings()
    vlms: dict = {}
    runs = {
        run: _answer_run(context, storage, settings, run, variant, model_dir, adapter_dir, vlms)
        for run, variant, model_dir, adapter_dir in _runs(storage, base_model_source, config)
    }
    version = content_hash({r: info["sha256"] for r, info in runs.items()})
    write_json(storage.root_path / PREDICTIONS_DIR / "index.json", {"runs": runs, "data_version": version})
    first = next(iter(runs.values()))
    return dg.MaterializeResult(
        metadata={
            "runs": dg.MetadataValue.json(runs),
            "num_rows": sum(info["rows"] for info in runs.values()),
            "samples_per_second": dg.MetadataValue.json({r: info["samples_per_second"] for r, info in runs.items()}),
            "path": dg.MetadataValue.path(str(storage.root_path / PREDICTIONS_DIR)),
            "preview": dg.MetadataValue.md(_answers_preview(Path(first["predictions"]))),
            "data_version": dg.MetadataValue.text(version),
        },
        data_version=dg.DataVersion(version),
    )


def compare_to_base(
    finetuned: dict[str, dict[str, float]], base: dict[str, dict[str, float]]
) -> tuple[bool, dict[str, float]]:
    """(fine-tuned at least matches base, per-benchmark headline delta): passes when the mean headline metric over
    the benchmarks both have is no lower than the base model's."""
    ours, theirs = headline(finetuned), headline(base)
    shared = [task for task in ours if task in theirs]
    deltas = {task: round(ours[task] - theirs[task], 6) for task in shared}
    return bool(shared) and sum(deltas.values()) >= 0, deltas


@dg.asset(
    deps=[predictions],
    kinds={"python", "json"},
    group_name="evaluation",
    check_specs=[
        dg.AssetCheckSpec(
            "all_benchmarks_scored", asset="eval_scores", description="Every run has scores for all five benchmarks."
        ),
        dg.AssetCheckSpec(
            "finetuned_matches_base",
            asset="eval_scores",
            description="On the marked val set the fine-tuned checkpoint's mean headline metric is at "
            "least the untrained base model's.",
        ),
    ],
)
def eval_scores(context: dg.AssetExecutionContext, storage: StorageRoot) -> dg.MaterializeResult:
    """The five benchmarks' metrics of every prediction run (`evaluation/scores/<run>/<benchmark>.json`), beside the
    paper's numbers and the base model's, and the ablation table over the eval-set variants."""
    started = time.perf_counter()
    runs = _indexed_runs(storage)
    scores: dict[str, dict[str, dict[str, float]]] = {}
    suites: dict[str, Any] = {}
    with CaptionScorer() as scorer:  # one METEOR JVM for every run
        for run, info in runs.items():
            variant = info["variant"]
            if variant not in suites:
                suites[variant] = load_eval_set(storage.dataset_dir / "eval" / f"val_{variant}", storage.root_path)
            scores[run] = score_suite(suites[variant], read_predictions(info["predictions"]), scorer)
    out = storage.root_path / SCORES_DIR
    for run, benchmarks in scores.items():
        for task, metrics in benchmarks.items():
            write_json(
                out / run / f"{task}.json",
                {
                    "benchmark": task,
                    "run": run,
                    "metrics": metrics,
                    "items": suites[runs[run]["variant"]].counts()[task],
                    "predictions": runs[run]["predictions"],
                    "predictions_sha256": runs[run]["sha256"],
                    "eval_set": runs[run]["eval_set"],
                    "model": runs[run]["model"],
                },
            )
    summary = {"runs": {run: {**runs[run], "scores": scores[run]} for run in scores}}
    write_json(out / "summary.json", summary)
    version = content_hash(scores)
    write_text(out / "scores.md", _report(scores))

    missing = {run: missing_benchmarks(s) for run, s in scores.items() if missing_benchmarks(s)}
    checks = [
        dg.AssetCheckResult(
            check_name="all_benchmarks_scored",
            passed=not missing,
            metadata={"missing": dg.MetadataValue.json(missing), "runs": dg.MetadataValue.json(sorted(scores))},
        )
    ]
    if REFERENCE_RUN in scores and BASE_RUN in scores:
        passed, deltas = compare_to_base(scores[REFERENCE_RUN], scores[BASE_RUN])
        checks.append(
            dg.AssetCheckResult(
                check_name="finetuned_matches_base",
                passed=passed,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"headline_delta": dg.MetadataValue.json(deltas)},
            )
        )
    else:
        checks.append(
            dg.AssetCheckResult(
                check_name="finetuned_matches_base",
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"needs both {REFERENCE_RUN} and {BASE_RUN} runs",
            )
        )
    reference = scores.get(REFERENCE_RUN) or next(iter(scores.values()))
    return dg.MaterializeResult(
        metadata={
            "scores": dg.MetadataValue.md(_comparison(scores)),
            "ablation": dg.MetadataValue.md(
                ablation_table(
                    {r.removeprefix("finetuned_"): s for r, s in scores.items() if r.startswith("finetuned_")}
                )
            ),
            **{f"{task}/{HEADLINE[task]}": float(value) for task, value in headline(reference).items()},
            "all_scores": dg.MetadataValue.json(scores),
            "path": dg.MetadataValue.path(str(out)),
            "seconds": round(time.perf_counter() - started, 2),
        },
        data_version=dg.DataVersion(version),
        check_results=checks,
    )


def _indexed_runs(storage: StorageRoot) -> dict[str, dict[str, Any]]:
    """The runs of the last `predictions` materialisation, each file checked against the sha256 it recorded."""
    index_path = storage.root_path / PREDICTIONS_DIR / "index.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"{index_path}: materialise `predictions` first")
    runs = json.loads(index_path.read_text())["runs"]
    for run, info in runs.items():
        if file_sha256(Path(info["predictions"])) != info["sha256"]:
            raise ValueError(f"{info['predictions']} changed after `predictions` wrote it ({run}): rematerialise it")
    return runs


def _comparison(scores: dict[str, dict[str, dict[str, float]]]) -> str:
    order = [r for r in (REFERENCE_RUN, BASE_RUN) if r in scores] or list(scores)
    return comparison_table({r: scores[r] for r in order})


def _report(scores: dict[str, dict[str, dict[str, float]]]) -> str:
    variants = {r.removeprefix("finetuned_"): s for r, s in scores.items() if r.startswith("finetuned_")}
    parts = ["# Scores (x100; CIDEr x100 too)", "", _comparison(scores), ""]
    if variants:
        parts += ["## Ablation: the same checkpoint on each eval-set variant", "", ablation_table(variants), ""]
    return "\n".join(parts)


EVALUATION_ASSETS = [predictions, eval_scores]
