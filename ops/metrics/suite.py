"""An ``EvalSuite``: the ``score_*`` items of every benchmark present in an eval set, the map from a prediction's id
to its item, and ``score_suite``, which scores predictions against it.

Suites come from our eval shard sets (``ops.metrics.eval_sets``) or GPT4Scene's released annotation folder
(``ops.metrics.official``); predictions from ``ops.metrics.predictions``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.metrics.benchmarks import score_multi3drefer, score_scan2cap, score_scanqa, score_scanrefer, score_sqa3d
from ops.metrics.captions import CaptionScorer
from ops.metrics.grounding import Fallback

BENCHMARKS: tuple[str, ...] = ("scanqa", "sqa3d", "scanrefer", "multi3drefer", "scan2cap")


@dataclass
class EvalSuite:
    """The eval items of every benchmark present, and per benchmark the map prediction id → item id.

    ``kind`` is ``"ours"`` (prediction ids are sample ids) or ``"official"`` (qids)."""

    kind: str
    source: Path
    items: dict[str, list[Any]] = field(default_factory=dict)
    ids: dict[str, dict[str, str]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Items per benchmark (Scan2Cap: every object of the corpus)."""
        return {task: len(items) for task, items in self.items.items()}

    def resolve(self, predictions: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
        """``{task: {prediction id: answer}}`` → ``{task: {item id: answer}}``; an unknown task or id is an error."""
        out: dict[str, dict[str, str]] = {}
        for task, answers in predictions.items():
            if task not in self.ids:
                raise ValueError(f"{len(answers)} {task} predictions, but {self.source} has no {task} items")
            known = self.ids[task]
            unknown = sorted(set(answers) - set(known))
            if unknown:
                raise ValueError(
                    f"{task}: {len(unknown)} predictions match no item of {self.source}, e.g. {unknown[:5]}"
                )
            out[task] = {known[pid]: answer for pid, answer in answers.items()}
        return out

    def unanswered(
        self, predictions: Mapping[str, Mapping[str, str]], tasks: Sequence[str] | None = None
    ) -> dict[str, int]:
        """Per benchmark of the suite (or of ``tasks``) that misses some, how many prediction ids have no answer."""
        counts = {
            task: len(set(known) - set(predictions.get(task, {})))
            for task, known in self.ids.items()
            if tasks is None or task in tasks
        }
        return {task: count for task, count in counts.items() if count}


class IncompletePredictionsError(ValueError):
    """Predictions miss rows of the eval set, and complete predictions were required."""


def check_complete(
    suite: EvalSuite,
    predictions: Mapping[str, Mapping[str, str]],
    source: str | Path,
    warn: Callable[[str], None],
    tasks: Sequence[str] | None = None,
    require_complete: bool = False,
) -> dict[str, int]:
    """Before scoring, ``EvalSuite.unanswered``: rows without a prediction are scored as misses, so they are said
    (``warn``) or, with ``require_complete``, refused (``IncompletePredictionsError`` naming ``source``)."""
    missing = suite.unanswered(predictions, tasks)
    if missing:
        expected = sum(len(suite.ids[task]) for task in missing)
        listed = ", ".join(f"{task} {count}" for task, count in missing.items())
        message = f"{source}: {sum(missing.values())} of {expected} eval rows have no prediction ({listed})"
        if require_complete:
            raise IncompletePredictionsError(message)
        warn(f"warning: {message}; they score as misses")
    return missing


def score_suite(
    suite: EvalSuite,
    predictions: Mapping[str, Mapping[str, str]],
    scorer: CaptionScorer | None = None,
    scanrefer_fallback: Fallback = "zero",
    tasks: Sequence[str] | None = None,
) -> dict[str, dict[str, float]]:
    """``{benchmark: {metric: value}}`` for every benchmark of ``suite`` (or ``tasks``); ``predictions`` keyed by
    prediction id as ``read_predictions`` gives them. One caption scorer (one METEOR JVM) serves all benchmarks."""
    answers = suite.resolve(predictions)
    chosen = [t for t in suite.items if tasks is None or t in tasks]

    def run(active: CaptionScorer | None) -> dict[str, dict[str, float]]:
        scorers: dict[str, Callable[[Mapping[str, str], list[Any]], dict[str, float]]] = {
            "scanqa": lambda given, items: score_scanqa(given, items, active),
            "sqa3d": score_sqa3d,
            "scanrefer": lambda given, items: score_scanrefer(given, items, fallback=scanrefer_fallback),
            "multi3drefer": score_multi3drefer,
            "scan2cap": lambda given, items: score_scan2cap(given, items, active),
        }
        return {task: scorers[task](answers.get(task, {}), suite.items[task]) for task in chosen}

    if scorer is not None or not {"scanqa", "scan2cap"} & set(chosen):
        return run(scorer)
    with CaptionScorer() as own:
        return run(own)
