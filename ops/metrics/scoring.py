"""Scoring of prediction runs: every run's five benchmarks, the per-benchmark JSON files, the summary and report.

Reads ``evaluation/predictions/index.json`` (one ``AnsweredRun`` per run, written by ``ops.model.evaluation``) and
writes under ``evaluation/scores/`` (``ops.core.layout.EvaluationLayout``):

    scores/<run>/<benchmark>.json     one JSON per benchmark: metrics, item count, predictions and their sha256
    scores/summary.json               every run's index entry with its scores
    scores/scores.md                  the comparison with the paper and the base model, and the ablation table

Run names: ``finetuned_<variant>`` (the checkpoint on each eval-set variant) and ``base_marked`` (the base model).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ops.core.atomic import write_json, write_text
from ops.core.fingerprint import content_hash, file_sha256
from ops.core.layout import StorageLayout
from ops.metrics.captions import CaptionScorer
from ops.metrics.eval_sets import load_eval_set
from ops.metrics.predictions import read_predictions
from ops.metrics.report import ablation_table, comparison_table, headline, missing_benchmarks
from ops.metrics.suite import EvalSuite, score_suite

FINETUNED_PREFIX = "finetuned_"
REFERENCE_RUN, BASE_RUN = f"{FINETUNED_PREFIX}marked", "base_marked"

RunScores = dict[str, dict[str, float]]  # {benchmark: {metric: value}}


@dataclass(frozen=True)
class AnsweredRun:
    """One prediction run as ``evaluation/predictions/index.json`` records it."""

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


def read_predictions_index(path: Path) -> dict[str, AnsweredRun]:
    """The runs of the last ``predictions`` materialisation, each file checked against the sha256 it recorded."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: materialise `predictions` first")
    runs = {run: AnsweredRun(**info) for run, info in json.loads(path.read_text())["runs"].items()}
    for run, info in runs.items():
        if file_sha256(Path(info.predictions)) != info.sha256:
            raise ValueError(f"{info.predictions} changed after `predictions` wrote it ({run}): rematerialise it")
    return runs


def compare_to_base(finetuned: RunScores, base: RunScores) -> tuple[bool, dict[str, float]]:
    """(fine-tuned at least matches base, per-benchmark headline delta): passes when the mean headline metric over
    the benchmarks both have is no lower than the base model's."""
    ours, theirs = headline(finetuned), headline(base)
    shared = [task for task in ours if task in theirs]
    deltas = {task: round(ours[task] - theirs[task], 6) for task in shared}
    return bool(shared) and sum(deltas.values()) >= 0, deltas


@dataclass(frozen=True)
class ScoredRuns:
    """Every run's scores, ``{run: {benchmark: {metric: value}}}``, and the tables and comparisons made of them."""

    scores: dict[str, RunScores]

    @property
    def data_version(self) -> str:
        return content_hash(self.scores)

    @property
    def missing(self) -> dict[str, list[str]]:
        """Runs lacking a benchmark's headline metric, with the benchmarks they lack."""
        return {run: missing_benchmarks(s) for run, s in self.scores.items() if missing_benchmarks(s)}

    @property
    def versus_base(self) -> tuple[bool, dict[str, float]] | None:
        """``compare_to_base`` of the reference run with the base run; None without both."""
        if REFERENCE_RUN in self.scores and BASE_RUN in self.scores:
            return compare_to_base(self.scores[REFERENCE_RUN], self.scores[BASE_RUN])
        return None

    @property
    def reference_headline(self) -> dict[str, float]:
        """Headline metrics of the reference run (else of the first run)."""
        return headline(self.scores.get(REFERENCE_RUN) or next(iter(self.scores.values())))

    @property
    def comparison(self) -> str:
        """Markdown: the reference and base runs (else every run) beside the paper's numbers."""
        order = [r for r in (REFERENCE_RUN, BASE_RUN) if r in self.scores] or list(self.scores)
        return comparison_table({r: self.scores[r] for r in order})

    @property
    def ablation(self) -> str:
        """Markdown: the fine-tuned runs, one column per eval-set variant."""
        return ablation_table(self._variants())

    def report(self) -> str:
        """``scores.md``: the comparison and, when there are fine-tuned runs, the ablation."""
        parts = ["# Scores (x100; CIDEr x100 too)", "", self.comparison, ""]
        if self._variants():
            parts += ["## Ablation: the same checkpoint on each eval-set variant", "", self.ablation, ""]
        return "\n".join(parts)

    def _variants(self) -> dict[str, RunScores]:
        return {r.removeprefix(FINETUNED_PREFIX): s for r, s in self.scores.items() if r.startswith(FINETUNED_PREFIX)}


def score_runs(layout: StorageLayout) -> ScoredRuns:
    """Score every indexed prediction run on its eval set and write the benchmark files, ``summary.json`` and
    ``scores.md`` under ``evaluation/scores/``."""
    runs = read_predictions_index(layout.evaluation.predictions_index)
    scores: dict[str, RunScores] = {}
    suites: dict[str, EvalSuite] = {}
    with CaptionScorer() as scorer:  # one METEOR JVM for every run
        for run, info in runs.items():
            if info.variant not in suites:
                suites[info.variant] = load_eval_set(layout.dataset.eval_set(info.variant), layout.root)
            scores[run] = score_suite(suites[info.variant], read_predictions(info.predictions), scorer)
    evaluation = layout.evaluation
    for run, benchmarks in scores.items():
        info = runs[run]
        for task, metrics in benchmarks.items():
            record = _benchmark_record(run, task, metrics, info, suites[info.variant])
            write_json(evaluation.benchmark_scores(run, task), record)
    summary = {"runs": {run: {**asdict(runs[run]), "scores": scores[run]} for run in scores}}
    write_json(evaluation.scores_summary, summary)
    scored = ScoredRuns(scores)
    write_text(evaluation.scores_report, scored.report())
    return scored


def _benchmark_record(
    run: str, task: str, metrics: dict[str, float], info: AnsweredRun, suite: EvalSuite
) -> dict[str, Any]:
    return {
        "benchmark": task,
        "run": run,
        "metrics": metrics,
        "items": suite.counts()[task],
        "predictions": info.predictions,
        "predictions_sha256": info.sha256,
        "eval_set": info.eval_set,
        "model": info.model,
    }
