"""Prediction runs: each experiment's latest checkpoint version answering the eval set of its own data variant.

One run per experiment, named after it (``recipes/experiments/``, ``ops.model.experiments``): a trained experiment
loads its latest version under ``models/checkpoints/<experiment>/`` (an adapter on the base model, or full
weights); the base-model experiment loads the base model. Each run answers into
``evaluation/predictions/<experiment>/`` (layout in ``ops.core.layout.EvaluationLayout``): its chunk files, merged
into ``predictions.jsonl``, and ``run.json`` (model fingerprint, eval-set data version, settings, complete flag, and
once complete the run's record for scoring, ``ops.metrics.scoring``). A run resumes its chunk files only when the
model, eval set and settings are unchanged; otherwise its folder is cleared first. No run touches another's folder.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ops.core.atomic import write_json
from ops.core.fingerprint import file_sha256
from ops.core.layout import MANIFEST, StorageLayout
from ops.dataset.shards import read_manifest
from ops.metrics.scoring import AnsweredRun
from ops.model.experiments import Experiment
from ops.model.inference import (
    InferenceSettings,
    Log,
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
from ops.model.training.versions import latest_version


def _no_log(_: str) -> None:
    pass


@dataclass(frozen=True)
class PlannedRun:
    """One run to answer: its name (the experiment), eval-set variant, checkpoint version, model folder and adapter
    folder (None: the model alone)."""

    name: str
    variant: str
    checkpoint: str
    model_dir: Path
    adapter_dir: Path | None


def plan_experiment_run(layout: StorageLayout, experiment: Experiment, base_dir: Path) -> PlannedRun:
    """The experiment's latest checkpoint version on the eval set of its data variant (errors say what to
    materialise first)."""
    experiment_dir = layout.models.experiment_checkpoints(experiment.name)
    version = latest_version(experiment_dir)
    if version is None:
        raise FileNotFoundError(
            f"{experiment_dir}: no checkpoint version; materialise `checkpoint` [{experiment.name}]"
        )
    eval_dir = layout.dataset.eval_set(experiment.data_variant)
    if not (eval_dir / MANIFEST).is_file():
        raise FileNotFoundError(f"{eval_dir}: no eval set; materialise `eval_sets` [{experiment.data_variant}]")
    if experiment.trains:
        model_dir, adapter_dir = checkpoint_model_dirs(base_dir, experiment_dir / version)
    else:
        model_dir, adapter_dir = base_dir, None
    return PlannedRun(experiment.name, experiment.data_variant, version, model_dir, adapter_dir)


def answer_experiment(
    layout: StorageLayout, experiment: Experiment, base_dir: Path, settings: InferenceSettings, log: Log = _no_log
) -> AnsweredRun:
    """Answer the experiment's eval set with its latest checkpoint version (``plan_experiment_run``), resuming what
    is still valid."""
    return answer_run(layout, plan_experiment_run(layout, experiment, base_dir), settings, {}, log)


def answer_run(
    layout: StorageLayout,
    plan: PlannedRun,
    settings: InferenceSettings,
    vlms: dict[tuple[Path, Path | None], Any],
    log: Log = _no_log,
) -> AnsweredRun:
    """Answer one run's eval set into ``predictions/<run>/`` and merge its chunks; ``run.json``, written last,
    holds the run's record. ``vlms`` keeps the last loaded model for a next run."""
    eval_dir = layout.dataset.eval_set(plan.variant)
    evaluation = layout.evaluation
    out_dir = evaluation.prediction_run(plan.name)
    identity = {
        "model": model_fingerprint(plan.model_dir, plan.adapter_dir),
        "eval_set": read_manifest(eval_dir).data_version,
        "settings": {k: v for k, v in asdict(settings).items() if k != "chunk_index"},
    }
    run_file = evaluation.run_record(plan.name)
    previous = json.loads(run_file.read_text()) if run_file.is_file() else None
    if previous is None or {k: previous.get(k) for k in identity} != identity:
        shutil.rmtree(out_dir, ignore_errors=True)  # another model, eval set or settings: nothing to resume
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_file, {**identity, "complete": False})
    started = time.perf_counter()
    chunks = [chunk_path(out_dir, settings.num_chunks, i) for i in range(settings.num_chunks)]
    if settings.num_chunks == 1:
        generated = _answer_in_process(layout.root, plan, eval_dir, chunks[0], settings, vlms, log)
    else:
        generated = _answer_in_chunk_processes(layout, plan, eval_dir, chunks, settings, log)
    seconds = time.perf_counter() - started
    expected = [r.sample_id for r in read_eval_rows(eval_dir)[: settings.limit]]
    merged = evaluation.run_predictions(plan.name)
    rows = merge_predictions(chunks, merged, expected)
    log(f"{plan.name}: {rows} predictions ({generated} new in {seconds:.1f} s)")
    answered = AnsweredRun(
        variant=plan.variant,
        rows=rows,
        generated=generated,
        seconds=round(seconds, 2),
        samples_per_second=round(generated / seconds, 3) if generated and seconds > 0 else None,
        predictions=str(merged),
        sha256=file_sha256(merged),
        model=identity["model"],
        eval_set=identity["eval_set"],
        adapter=str(plan.adapter_dir) if plan.adapter_dir else None,
        experiment=plan.name,
        checkpoint=plan.checkpoint,
    )
    write_json(run_file, {**identity, "complete": True, "rows": rows, "answered": asdict(answered)})
    return answered


def _answer_in_process(
    root: Path,
    plan: PlannedRun,
    eval_dir: Path,
    chunk: Path,
    settings: InferenceSettings,
    vlms: dict[tuple[Path, Path | None], Any],
    log: Log,
) -> int:
    """Answer the one chunk here, with the model kept in ``vlms`` (one model in memory at a time)."""
    key = (plan.model_dir, plan.adapter_dir)
    if key not in vlms:
        from ops.model.vlm import load_vlm

        vlms.clear()
        vlms[key] = load_vlm(plan.model_dir, plan.adapter_dir)
    return run_inference(vlms[key], eval_dir, chunk, settings, root, log=log).generated


def _answer_in_chunk_processes(
    layout: StorageLayout,
    plan: PlannedRun,
    eval_dir: Path,
    chunks: list[Path],
    settings: InferenceSettings,
    log: Log,
) -> int:
    """Answer every chunk in its own process (one per GPU when there are GPUs); rows answered now."""
    import torch

    out_dir = layout.evaluation.prediction_run(plan.name)
    before = sum(len(read_prediction_rows(chunk)) for chunk in chunks)
    commands = [
        chunk_command(
            plan.model_dir, plan.adapter_dir, eval_dir, out_dir, replace(settings, chunk_index=i), layout.root
        )
        for i in range(settings.num_chunks)
    ]
    run_chunk_processes(commands, layout.evaluation.run_logs(plan.name), torch.cuda.device_count(), log=log)
    return sum(len(read_prediction_rows(chunk)) for chunk in chunks) - before


def answers_markdown(path: str | Path, per_task: int = 2) -> str:
    """Markdown table of the first ``per_task`` answers of each task in a predictions file."""
    lines = ["| task | sample | answer |", "|---|---|---|"]
    seen: dict[str, int] = {}
    for row in read_prediction_rows(path):
        if seen.get(row["task"], 0) < per_task:
            seen[row["task"]] = seen.get(row["task"], 0) + 1
            answer = row["answer"].replace("|", "\\|").replace("\n", " ")[:120]
            lines.append(f"| {row['task']} | `{row['sample_id']}` | {answer} |")
    return "\n".join(lines)
