"""Evaluation assets: `predictions` (the checkpoint and the base model answering the eval sets) → `eval_scores`.

Runs: the fine-tuned checkpoint on every eval-set variant present (`finetuned_marked`, `finetuned_no_bev`,
`finetuned_unmarked`: the paper's ablations, same checkpoint) and the untrained base model on `marked`
(`base_marked`). Layout under the storage root:

    evaluation/predictions/<run>/predictions.jsonl       merged, sorted by sample id (ops.model.inference format)
    evaluation/predictions/<run>/predictions_chunk_*     the chunk files a run resumes from
    evaluation/predictions/<run>/run.json                model fingerprint, eval-set version, settings, complete flag
    evaluation/predictions/index.json                    written last: the runs of the last materialisation
    evaluation/scores/<run>/<benchmark>.json             one JSON per benchmark (docs/ARCHITECTURE.md)
    evaluation/scores/summary.json                       every run's index entry with its scores
    evaluation/scores/scores.md                          the comparison and ablation tables

A run resumes its chunk files only when its model fingerprint, eval-set data version and generation settings are
unchanged; otherwise its folder is cleared first (``ops.model.evaluation``). Data versions are content hashes of the
merged predictions and of the scores (``ops.metrics.scoring``).
"""

import time

import dagster as dg
from pydantic import Field

from ops.core.settings import setting_field
from ops.dataset.samples import VARIANTS
from ops.metrics.report import HEADLINE
from ops.metrics.scoring import BASE_RUN, REFERENCE_RUN, ScoredRuns, score_runs
from ops.model.evaluation import answer_runs, answers_markdown
from ops.model.inference import InferenceSettings
from resources.config import settings_config
from resources.storage import StorageRoot
from resources.training import BaseModelSource

_INFERENCE_FIELDS = ("batch_size", "max_new_tokens", "image_max_side", "num_chunks")


class PredictionsConfig(settings_config(InferenceSettings, names=_INFERENCE_FIELDS)):
    """Launchpad settings of inference (``InferenceSettings``: GPT4Scene's `infer.py`, greedy, 128 new tokens, 512 px)
    and of the runs."""

    variants: list[str] = Field(
        default=list(VARIANTS), description="eval-set variants the checkpoint answers (those not built are skipped)"
    )
    include_base_model: bool = Field(default=True, description="also answer the marked set with the untrained base")
    limit: int = Field(
        default=0, ge=0, description=f"{setting_field(InferenceSettings, 'limit').help} of each eval set (0: all)"
    )

    def settings(self) -> InferenceSettings:
        values = self.settings_values()
        return InferenceSettings(**{name: values[name] for name in _INFERENCE_FIELDS}, limit=self.limit or None)


@dg.asset(deps=["checkpoint", "base_model", "eval_sets"], kinds={"pytorch", "json"}, group_name="evaluation")
def predictions(
    context: dg.AssetExecutionContext,
    config: PredictionsConfig,
    storage: StorageRoot,
    base_model_source: BaseModelSource,
) -> dg.MaterializeResult:
    """Greedy answers of the fine-tuned checkpoint on every eval-set variant and of the untrained base model on the
    marked set: `evaluation/predictions/<run>/predictions.jsonl` (batched, resumable, optionally chunked)."""
    answered = answer_runs(
        storage.layout,
        storage.base_model_dir(base_model_source.model_dir),
        storage.models.checkpoint,
        config.settings(),
        config.variants,
        config.include_base_model,
        log=context.log.info,
    )
    runs = answered.runs
    return dg.MaterializeResult(
        metadata={
            "runs": dg.MetadataValue.json(answered.as_json()),
            "num_rows": sum(info.rows for info in runs.values()),
            "samples_per_second": dg.MetadataValue.json({r: info.samples_per_second for r, info in runs.items()}),
            "path": dg.MetadataValue.path(str(storage.evaluation.predictions)),
            "preview": dg.MetadataValue.md(answers_markdown(next(iter(runs.values())).predictions)),
            "data_version": dg.MetadataValue.text(answered.data_version),
        },
        data_version=dg.DataVersion(answered.data_version),
    )


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
def eval_scores(storage: StorageRoot) -> dg.MaterializeResult:
    """The five benchmarks' metrics of every prediction run (`evaluation/scores/<run>/<benchmark>.json`), beside the
    paper's numbers and the base model's, and the ablation table over the eval-set variants."""
    started = time.perf_counter()
    scored = score_runs(storage.layout)
    return dg.MaterializeResult(
        metadata={
            "scores": dg.MetadataValue.md(scored.comparison),
            "ablation": dg.MetadataValue.md(scored.ablation),
            **{f"{task}/{HEADLINE[task]}": value for task, value in scored.reference_headline.items()},
            "all_scores": dg.MetadataValue.json(scored.scores),
            "path": dg.MetadataValue.path(str(storage.evaluation.scores)),
            "seconds": round(time.perf_counter() - started, 2),
        },
        data_version=dg.DataVersion(scored.data_version),
        check_results=[_all_scored_check(scored), _versus_base_check(scored)],
    )


def _all_scored_check(scored: ScoredRuns) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="all_benchmarks_scored",
        passed=not scored.missing,
        metadata={
            "missing": dg.MetadataValue.json(scored.missing),
            "runs": dg.MetadataValue.json(sorted(scored.scores)),
        },
    )


def _versus_base_check(scored: ScoredRuns) -> dg.AssetCheckResult:
    if scored.versus_base is None:
        return dg.AssetCheckResult(
            check_name="finetuned_matches_base",
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"needs both {REFERENCE_RUN} and {BASE_RUN} runs",
        )
    passed, deltas = scored.versus_base
    return dg.AssetCheckResult(
        check_name="finetuned_matches_base",
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"headline_delta": dg.MetadataValue.json(deltas)},
    )


EVALUATION_ASSETS = [predictions, eval_scores]
