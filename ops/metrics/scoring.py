"""Scoring of one experiment's prediction run: its five benchmarks, the per-benchmark JSON files, summary and report.

Reads ``evaluation/predictions/<experiment>/run.json`` (the ``AnsweredRun`` record ``ops.model.evaluation`` writes
once a run is complete) and writes under ``evaluation/scores/<experiment>/`` (``ops.core.layout.EvaluationLayout``):

    <benchmark>.json     one JSON per benchmark: metrics, item count, predictions and their sha256, checkpoint
    summary.json         the run's record with its scores (written after the benchmark files)
    scores.md            the run beside the paper's numbers

Scoring one experiment never touches another's files. ``compare_to_base`` is the rule of the `beats_base_model`
check: a checkpoint must beat the untrained base model's headline metric on at least ``BEATS_BASE_MIN`` benchmarks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ops.core.atomic import write_json, write_text
from ops.core.fingerprint import content_hash, file_sha256
from ops.core.layout import StorageLayout
from ops.metrics.captions import CaptionScorer
from ops.metrics.eval_sets import load_eval_set
from ops.metrics.predictions import read_predictions
from ops.metrics.report import comparison_table, headline, missing_benchmarks
from ops.metrics.suite import EvalSuite, check_complete, score_suite

BEATS_BASE_MIN = 3  # of the five benchmarks' headline metrics

RunScores = dict[str, dict[str, float]]  # {benchmark: {metric: value}}


@dataclass(frozen=True)
class AnsweredRun:
    """One experiment's prediction run as its ``run.json`` records it."""

    variant: str
    rows: int
    generated: int
    seconds: float
    samples_per_second: float | None
    predictions: str
    sha256: str
    model: str
    eval_set: str
    adapter: str | None
    experiment: str
    checkpoint: str  # the checkpoint version answering


def read_answered_run(run_file: Path) -> AnsweredRun:
    """The complete run recorded in ``run_file``, its predictions checked against the sha256 it recorded."""
    record = json.loads(run_file.read_text()) if run_file.is_file() else {}
    if not record.get("complete"):
        raise FileNotFoundError(f"{run_file}: no complete prediction run; materialise `predictions` first")
    info = AnsweredRun(**record["answered"])
    if file_sha256(Path(info.predictions)) != info.sha256:
        raise ValueError(f"{info.predictions} changed after `predictions` wrote it: rematerialise it")
    return info


def compare_to_base(finetuned: RunScores, base: RunScores) -> tuple[bool, dict[str, float]]:
    """(beats base, per-benchmark headline delta): passes when the headline metric is above the base model's on at
    least ``BEATS_BASE_MIN`` of the benchmarks both have."""
    ours, theirs = headline(finetuned), headline(base)
    deltas = {task: round(ours[task] - theirs[task], 6) for task in ours if task in theirs}
    return sum(delta > 0 for delta in deltas.values()) >= BEATS_BASE_MIN, deltas


@dataclass(frozen=True)
class ExperimentScores:
    """One experiment's run record and scores, ``{benchmark: {metric: value}}``."""

    run: AnsweredRun
    scores: RunScores
    missing_predictions: dict[str, int] = field(default_factory=dict)  # eval rows without a prediction, per task

    @property
    def data_version(self) -> str:
        return content_hash({"scores": self.scores, "checkpoint": self.run.checkpoint, "model": self.run.model})

    @property
    def missing(self) -> list[str]:
        """Benchmarks lacking their headline metric."""
        return missing_benchmarks(self.scores)

    @property
    def headline(self) -> dict[str, float]:
        return headline(self.scores)

    @property
    def comparison(self) -> str:
        """Markdown: the run beside the paper's numbers."""
        return comparison_table({self.run.experiment: self.scores})

    def report(self) -> str:
        return "\n".join(
            [f"# Scores of {self.run.experiment} {self.run.checkpoint} (x100; CIDEr x100 too)", "", self.comparison, ""]
        )

    def summary(self) -> dict[str, Any]:
        """``summary.json``: the run record, the scores and, when rows went unanswered, how many per task."""
        missing = {"missing_predictions": self.missing_predictions} if self.missing_predictions else {}
        return {**asdict(self.run), "scores": self.scores, **missing}


def score_experiment(
    layout: StorageLayout,
    experiment: str,
    scorer: CaptionScorer | None = None,
    warn: Callable[[str], None] = print,
    require_complete: bool = False,
) -> ExperimentScores:
    """Score the experiment's prediction run on its eval set and write its benchmark files, ``summary.json`` and
    ``scores.md``. Eval rows without a prediction are counted first (``check_complete``): said through ``warn`` and
    recorded, or refused with ``require_complete``."""
    evaluation = layout.evaluation
    run = read_answered_run(evaluation.run_record(experiment))
    suite = load_eval_set(layout.dataset.eval_set(run.variant), layout.root)
    predictions = read_predictions(run.predictions)
    missing = check_complete(suite, predictions, run.predictions, warn, require_complete=require_complete)
    if scorer is None:
        with CaptionScorer() as own:
            scores = score_suite(suite, predictions, own)
    else:
        scores = score_suite(suite, predictions, scorer)
    for task, metrics in scores.items():
        write_json(evaluation.benchmark_scores(experiment, task), _benchmark_record(task, metrics, run, suite))
    scored = ExperimentScores(run, scores, dict(missing))
    write_json(evaluation.scores_summary(experiment), scored.summary())
    write_text(evaluation.scores_report(experiment), scored.report())
    return scored


def read_experiment_scores(layout: StorageLayout, experiment: str) -> ExperimentScores | None:
    """The experiment's last written scores, or None if it has none."""
    path = layout.evaluation.scores_summary(experiment)
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    scores = summary.pop("scores")
    missing = summary.pop("missing_predictions", {})
    return ExperimentScores(AnsweredRun(**summary), scores, missing)


def _benchmark_record(task: str, metrics: dict[str, float], run: AnsweredRun, suite: EvalSuite) -> dict[str, Any]:
    return {
        "benchmark": task,
        "run": run.experiment,
        "checkpoint": run.checkpoint,
        "metrics": metrics,
        "items": suite.counts()[task],
        "predictions": run.predictions,
        "predictions_sha256": run.sha256,
        "eval_set": run.eval_set,
        "model": run.model,
    }
