"""Prediction runs: the fine-tuned checkpoint on every eval-set variant and the base model on the marked set.

Runs: ``finetuned_<variant>`` for every eval-set variant built (the paper's ablations, same checkpoint) and
``base_marked`` (the untrained base model). Each run answers into ``evaluation/predictions/<run>/`` (layout in
``ops.core.layout.EvaluationLayout``): its chunk files, merged into ``predictions.jsonl``, and ``run.json`` (model
fingerprint, eval-set data version, settings, complete flag). A run resumes its chunk files only when all three
are unchanged; otherwise its folder is cleared first. ``index.json``, written last, lists the runs for scoring
(``ops.metrics.scoring``); its data version hashes the merged files.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ops.core.atomic import write_json
from ops.core.fingerprint import content_hash, file_sha256
from ops.core.layout import MANIFEST, DatasetLayout, StorageLayout
from ops.dataset.shards import read_manifest
from ops.metrics.scoring import BASE_RUN, FINETUNED_PREFIX, AnsweredRun
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


def _no_log(_: str) -> None:
    pass


@dataclass(frozen=True)
class PlannedRun:
    """One run to answer: its name, eval-set variant, model folder and adapter folder (None: the model alone)."""

    name: str
    variant: str
    model_dir: Path
    adapter_dir: Path | None


@dataclass(frozen=True)
class AnsweredRuns:
    """Every run of one materialisation, as ``index.json`` records them, and the data version of their answers."""

    runs: dict[str, AnsweredRun]

    @property
    def data_version(self) -> str:
        return content_hash({run: info.sha256 for run, info in self.runs.items()})

    def as_json(self) -> dict[str, dict[str, Any]]:
        """``{run: index entry}``."""
        return {run: asdict(info) for run, info in self.runs.items()}


def plan_runs(
    dataset: DatasetLayout,
    base_dir: Path,
    checkpoint_dir: Path,
    variants: Sequence[str],
    include_base_model: bool,
) -> list[PlannedRun]:
    """The checkpoint on every variant of ``variants`` whose eval set exists, then the base model on ``marked``
    (when asked and the marked set exists)."""
    model_dir, adapter_dir = checkpoint_model_dirs(base_dir, checkpoint_dir)
    runs = [
        PlannedRun(f"{FINETUNED_PREFIX}{v}", v, model_dir, adapter_dir)
        for v in variants
        if (dataset.eval_set(v) / MANIFEST).is_file()
    ]
    if include_base_model and any(run.variant == "marked" for run in runs):
        runs.append(PlannedRun(BASE_RUN, "marked", base_dir, None))
    if not runs:
        raise FileNotFoundError(f"no eval set of variants {list(variants)} under {dataset.eval}")
    return runs


def answer_runs(
    layout: StorageLayout,
    base_dir: Path,
    checkpoint_dir: Path,
    settings: InferenceSettings,
    variants: Sequence[str],
    include_base_model: bool = True,
    log: Log = _no_log,
) -> AnsweredRuns:
    """Answer every planned run (``plan_runs``), resuming what is still valid, and write ``index.json`` last."""
    vlms: dict[tuple[Path, Path | None], Any] = {}
    plans = plan_runs(layout.dataset, base_dir, checkpoint_dir, variants, include_base_model)
    answered = AnsweredRuns({plan.name: answer_run(layout, plan, settings, vlms, log) for plan in plans})
    write_json(layout.evaluation.predictions_index, {"runs": answered.as_json(), "data_version": answered.data_version})
    return answered


def answer_run(
    layout: StorageLayout,
    plan: PlannedRun,
    settings: InferenceSettings,
    vlms: dict[tuple[Path, Path | None], Any],
    log: Log = _no_log,
) -> AnsweredRun:
    """Answer one run's eval set into ``predictions/<run>/`` and merge its chunks. ``vlms`` keeps the last loaded
    model for the next run (the fine-tuned runs share one)."""
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
    write_json(run_file, {**identity, "complete": True, "rows": rows})
    log(f"{plan.name}: {rows} predictions ({generated} new in {seconds:.1f} s)")
    return AnsweredRun(
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
    )


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
