"""Prediction runs: each experiment's latest checkpoint version answering the eval set of its own data variant.

One run per experiment, named after it (``recipes/experiments/``, ``ops.model.experiments``): a trained experiment
loads its latest version under ``models/checkpoints/<experiment>/`` (an adapter on the base model, or full
weights); the base-model experiment loads the base model. Each run answers into
``evaluation/predictions/<experiment>/`` (layout in ``ops.core.layout.EvaluationLayout``): its chunk files, merged
into ``predictions.jsonl``, and ``run.json`` (model fingerprint, eval-set data version, settings, complete flag, and
once complete the run's record for scoring, ``ops.metrics.scoring``). A run resumes its chunk files only when the
model, eval set and settings are unchanged; otherwise its folder is cleared first. No run touches another's folder.

A zero-shot experiment (``Experiment.endpoint``) has no checkpoint: ``answer_zero_shot`` sends each eval row to its
OpenAI-compatible endpoint (``ops.model.zero_shot``: 2x4 frame grid + BEV) into the same folder and files. Its
``run.json`` identity is the endpoint's base URL and model name in place of the model fingerprint (never the API
key, which is read from the environment variable the experiment names when the requests go out), and it records
``created`` and ``code_commit`` for the leaderboard. Requests are retried on connection errors, HTTP 429 and 5xx
(``retries`` more tries, doubling backoff); ``concurrency`` are in flight at most; rows already in the chunk file
are never asked again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
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
from ops.model.training.checkpoint import code_commit
from ops.model.training.publish import utc_now
from ops.model.training.versions import latest_version
from ops.model.zero_shot import ChatClient, RetryingCompletion, run_zero_shot

ZERO_SHOT_CHECKPOINT = "endpoint"  # the "checkpoint version" a zero-shot run records: there is none


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
    if experiment.endpoint is not None:
        raise ValueError(f"{experiment.name} is a zero-shot experiment: it has no checkpoint (answer_zero_shot)")
    experiment_dir = layout.models.experiment_checkpoints(experiment.name)
    version = latest_version(experiment_dir)
    if version is None:
        raise FileNotFoundError(
            f"{experiment_dir}: no checkpoint version; materialise `checkpoint` [{experiment.name}]"
        )
    _check_eval_set(layout, experiment.data_variant)
    if experiment.trains:
        model_dir, adapter_dir = checkpoint_model_dirs(base_dir, experiment_dir / version)
    else:
        model_dir, adapter_dir = base_dir, None
    return PlannedRun(experiment.name, experiment.data_variant, version, model_dir, adapter_dir)


def _check_eval_set(layout: StorageLayout, variant: str) -> None:
    eval_dir = layout.dataset.eval_set(variant)
    if not (eval_dir / MANIFEST).is_file():
        raise FileNotFoundError(f"{eval_dir}: no eval set; materialise `eval_sets` [{variant}]")


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
    identity = {
        "model": model_fingerprint(plan.model_dir, plan.adapter_dir),
        "eval_set": read_manifest(eval_dir).data_version,
        "settings": {k: v for k, v in asdict(settings).items() if k != "chunk_index"},
    }

    def answer(chunks: list[Path]) -> int:
        if settings.num_chunks == 1:
            return _answer_in_process(layout.root, plan, eval_dir, chunks[0], settings, vlms, log)
        return _answer_in_chunk_processes(layout, plan, eval_dir, chunks, settings, log)

    run = _RunRecord(plan.name, plan.variant, plan.checkpoint, identity, identity["model"], plan.adapter_dir)
    return _answer_into(layout, run, settings.num_chunks, settings.limit, answer, log)


@dataclass(frozen=True)
class _RunRecord:
    """What ``run.json`` says of a run besides its outcome: the identity a resume must match, the model label the
    scores are tied to, the adapter folder, and (zero-shot) extra fields of the final record."""

    name: str
    variant: str
    checkpoint: str
    identity: dict[str, Any]
    model: str
    adapter_dir: Path | None
    extra: Mapping[str, Any] | None = None


def _answer_into(
    layout: StorageLayout,
    run: _RunRecord,
    num_chunks: int,
    limit: int | None,
    answer: Callable[[list[Path]], int],
    log: Log,
) -> AnsweredRun:
    """Clear ``predictions/<run>/`` unless its ``run.json`` has the same identity, let ``answer`` fill the chunk
    files (it returns the rows it answered), merge them and write the complete ``run.json``."""
    eval_dir = layout.dataset.eval_set(run.variant)
    evaluation = layout.evaluation
    out_dir = evaluation.prediction_run(run.name)
    run_file = evaluation.run_record(run.name)
    previous = json.loads(run_file.read_text()) if run_file.is_file() else None
    if previous is None or {k: previous.get(k) for k in run.identity} != run.identity:
        shutil.rmtree(out_dir, ignore_errors=True)  # another model, eval set or settings: nothing to resume
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_file, {**run.identity, "complete": False})
    started = time.perf_counter()
    chunks = [chunk_path(out_dir, num_chunks, i) for i in range(num_chunks)]
    generated = answer(chunks)
    seconds = time.perf_counter() - started
    expected = [r.sample_id for r in read_eval_rows(eval_dir)[:limit]]
    merged = evaluation.run_predictions(run.name)
    rows = merge_predictions(chunks, merged, expected)
    log(f"{run.name}: {rows} predictions ({generated} new in {seconds:.1f} s)")
    answered = AnsweredRun(
        variant=run.variant,
        rows=rows,
        generated=generated,
        seconds=round(seconds, 2),
        samples_per_second=round(generated / seconds, 3) if generated and seconds > 0 else None,
        predictions=str(merged),
        sha256=file_sha256(merged),
        model=run.model,
        eval_set=run.identity["eval_set"],
        adapter=str(run.adapter_dir) if run.adapter_dir else None,
        experiment=run.name,
        checkpoint=run.checkpoint,
    )
    record = {**run.identity, "complete": True, "rows": rows, "answered": asdict(answered), **(run.extra or {})}
    write_json(run_file, record)
    return answered


@dataclass(frozen=True)
class ZeroShotRun:
    """A zero-shot experiment's answered run, the endpoint it went to (base URL, model) and the retries it made."""

    answered: AnsweredRun
    base_url: str
    model: str
    retried: int


def answer_zero_shot(
    layout: StorageLayout,
    experiment: Experiment,
    settings: InferenceSettings,
    project_dir: Path,
    environ: Mapping[str, str] = os.environ,
    log: Log = _no_log,
) -> ZeroShotRun:
    """Answer a zero-shot experiment's eval set through its endpoint (module docstring), resuming the rows already
    answered when the endpoint, model, eval set, ``max_new_tokens`` and ``limit`` are unchanged."""
    endpoint = experiment.endpoint
    if endpoint is None:
        raise ValueError(f"{experiment.name} is not a zero-shot experiment (no endpoint)")
    _check_eval_set(layout, experiment.data_variant)
    eval_dir = layout.dataset.eval_set(experiment.data_variant)
    base_url = endpoint.url(environ)
    identity = {
        "endpoint": {"base_url": base_url, "model": endpoint.model},
        "eval_set": read_manifest(eval_dir).data_version,
        "settings": {"max_new_tokens": settings.max_new_tokens, "limit": settings.limit},
    }
    client = ChatClient(
        base_url, endpoint.model, endpoint.api_key(environ), endpoint.timeout_s, settings.max_new_tokens
    )
    complete = RetryingCompletion(client.complete, endpoint.retries, endpoint.backoff_s, log)
    log(f"{experiment.name}: {endpoint.model} at {base_url}, {endpoint.concurrency} requests in flight at most")

    def answer(chunks: list[Path]) -> int:
        stats = run_zero_shot(
            complete,
            eval_dir,
            chunks[0],
            experiment.data_variant,
            layout.root,
            limit=settings.limit,
            log=log,
            concurrency=endpoint.concurrency,
        )
        return stats.generated

    extra = {"created": utc_now(), "code_commit": code_commit(project_dir)}
    run = _RunRecord(
        experiment.name,
        experiment.data_variant,
        ZERO_SHOT_CHECKPOINT,
        identity,
        f"{endpoint.model} @ {base_url}",
        None,
        extra,
    )
    answered = _answer_into(layout, run, 1, settings.limit, answer, log)
    return ZeroShotRun(answered, base_url, endpoint.model, complete.retried)


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
