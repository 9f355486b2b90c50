"""Evaluation assets, one partition per experiment: `predictions` (its latest checkpoint version answering the eval
set of its own data variant) → `eval_scores` (the five benchmarks). The untrained base model is one more experiment.

Layout under the storage root (``ops.core.layout.EvaluationLayout``; docs/ARCHITECTURE.md, Evaluation):

    evaluation/predictions/<experiment>/predictions.jsonl   merged, sorted by sample id (ops.model.inference format)
    evaluation/predictions/<experiment>/predictions_chunk_* the chunk files a run resumes from
    evaluation/predictions/<experiment>/run.json            model fingerprint, eval-set version, settings, the record
    evaluation/scores/<experiment>/<benchmark>.json         one JSON per benchmark
    evaluation/scores/<experiment>/summary.json             the run's record with its scores
    evaluation/scores/<experiment>/scores.md                the run beside the paper's numbers

A run resumes its chunk files only when its model fingerprint, eval-set data version and generation settings are
unchanged; otherwise its folder is cleared first (``ops.model.evaluation``). A zero-shot experiment (an
``endpoint`` in its file) has no checkpoint: its `predictions` send the eval rows to its OpenAI-compatible endpoint
(``ops.model.evaluation.answer_zero_shot``; only ``limit`` and ``max_new_tokens`` of the config apply), its identity
is the endpoint and model name, and the API key is read from the environment variable the file names, never shown.
Data versions are content hashes of the merged predictions and of the scores (``ops.metrics.scoring``). Nothing here
writes another experiment's files.
"""

import time

import dagster as dg
from pydantic import Field

from assets.experiments import (
    Experiments,
    default_experiments,
    experiment_partitions,
    variant_mapping,
)
from ops.core.settings import setting_field
from ops.metrics.report import HEADLINE
from ops.metrics.scoring import (
    BEATS_BASE_MIN,
    ExperimentScores,
    compare_to_base,
    read_experiment_scores,
    score_experiment,
)
from ops.model.evaluation import answer_experiment, answer_zero_shot, answers_markdown
from ops.model.inference import InferenceSettings
from resources.config import settings_config
from resources.storage import StorageRoot
from resources.training import PROJECT_DIR, BaseModelSource

_INFERENCE_FIELDS = ("batch_size", "max_new_tokens", "image_max_side", "num_chunks")


class PredictionsConfig(settings_config(InferenceSettings, names=_INFERENCE_FIELDS)):
    """Launchpad settings of inference (``InferenceSettings``: GPT4Scene's `infer.py`, greedy, 128 new tokens,
    512 px)."""

    limit: int = Field(
        default=0, ge=0, description=f"{setting_field(InferenceSettings, 'limit').help} of the eval set (0: all)"
    )

    def settings(self) -> InferenceSettings:
        values = self.settings_values()
        return InferenceSettings(**{name: values[name] for name in _INFERENCE_FIELDS}, limit=self.limit or None)


def build_evaluation_assets(experiments: Experiments) -> list[dg.AssetsDefinition]:
    """`predictions` and `eval_scores` with one partition per experiment of ``experiments``."""
    partitions = experiment_partitions(experiments)
    base_names = [name for name, experiment in experiments.items() if experiment.kind == "base"]
    # Zero-shot experiments have no `checkpoint` partition: only the others depend on theirs.
    with_checkpoint = dg.StaticPartitionMapping({n: n for n, e in experiments.items() if e.endpoint is None})

    @dg.asset(
        partitions_def=partitions,
        deps=[
            dg.AssetDep("checkpoint", partition_mapping=with_checkpoint),
            "base_model",
            dg.AssetDep("eval_sets", partition_mapping=variant_mapping(experiments, trained_only=False)),
        ],
        kinds={"pytorch", "json"},
        group_name="evaluation",
    )
    def predictions(
        context: dg.AssetExecutionContext,
        config: PredictionsConfig,
        storage: StorageRoot,
        base_model_source: BaseModelSource,
    ) -> dg.MaterializeResult:
        """Greedy answers of the experiment's latest checkpoint version (the base model for the base experiment, the
        endpoint for a zero-shot one) on the eval set of its data variant: `evaluation/predictions/<experiment>/`
        (batched, resumable, chunked)."""
        experiment = experiments[context.partition_key]
        if experiment.endpoint is not None:
            zero_shot = answer_zero_shot(
                storage.layout, experiment, config.settings(), PROJECT_DIR, log=context.log.info
            )
            run = zero_shot.answered
            return dg.MaterializeResult(
                metadata={
                    "experiment": experiment.name,
                    "checkpoint_version": run.checkpoint,
                    "endpoint": zero_shot.base_url,
                    "endpoint_model": zero_shot.model,
                    "eval_set": run.variant,
                    "num_rows": run.rows,
                    "generated": run.generated,
                    "retried": zero_shot.retried,
                    "samples_per_second": run.samples_per_second,
                    "path": dg.MetadataValue.path(run.predictions),
                    "preview": dg.MetadataValue.md(answers_markdown(run.predictions)),
                },
                data_version=dg.DataVersion(run.sha256),
            )
        base_dir = storage.base_model_dir(base_model_source.model_dir)
        run = answer_experiment(storage.layout, experiment, base_dir, config.settings(), log=context.log.info)
        return dg.MaterializeResult(
            metadata={
                "experiment": experiment.name,
                "checkpoint_version": run.checkpoint,
                "eval_set": run.variant,
                "num_rows": run.rows,
                "generated": run.generated,
                "samples_per_second": run.samples_per_second,
                "path": dg.MetadataValue.path(run.predictions),
                "preview": dg.MetadataValue.md(answers_markdown(run.predictions)),
            },
            data_version=dg.DataVersion(run.sha256),
        )

    @dg.asset(
        partitions_def=partitions,
        deps=[predictions],
        kinds={"python", "json"},
        group_name="evaluation",
        check_specs=[
            dg.AssetCheckSpec(
                "all_benchmarks_scored", asset="eval_scores", description="The run has scores for all five benchmarks."
            ),
            dg.AssetCheckSpec(
                "beats_base_model",
                asset="eval_scores",
                description=f"The checkpoint's headline metric is above the untrained base model's on at least "
                f"{BEATS_BASE_MIN} of the 5 benchmarks (fails when it is no better than the base).",
            ),
        ],
    )
    def eval_scores(context: dg.AssetExecutionContext, storage: StorageRoot) -> dg.MaterializeResult:
        """The five benchmarks' metrics of the experiment's predictions (`evaluation/scores/<experiment>/`), beside
        the paper's numbers."""
        started = time.perf_counter()
        experiment = experiments[context.partition_key]
        scored = score_experiment(storage.layout, experiment.name, warn=context.log.warning)
        return dg.MaterializeResult(
            metadata={
                "experiment": experiment.name,
                "checkpoint_version": scored.run.checkpoint,
                "scores": dg.MetadataValue.md(scored.comparison),
                **{f"{task}/{HEADLINE[task]}": value for task, value in scored.headline.items()},
                "all_scores": dg.MetadataValue.json(scored.scores),
                "missing_predictions": dg.MetadataValue.json(scored.missing_predictions),
                "path": dg.MetadataValue.path(str(storage.evaluation.run_scores(experiment.name))),
                "seconds": round(time.perf_counter() - started, 2),
            },
            data_version=dg.DataVersion(scored.data_version),
            check_results=[
                _all_scored_check(scored),
                _beats_base_check(storage, scored, experiment.kind == "base", base_names),
            ],
        )

    return [predictions, eval_scores]


def _all_scored_check(scored: ExperimentScores) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="all_benchmarks_scored",
        passed=not scored.missing,
        metadata={"missing": dg.MetadataValue.json(scored.missing)},
    )


def _beats_base_check(
    storage: StorageRoot, scored: ExperimentScores, is_base: bool, base_names: list[str]
) -> dg.AssetCheckResult:
    if is_base:
        return dg.AssetCheckResult(
            check_name="beats_base_model", passed=True, metadata={"note": "this is the base-model experiment"}
        )
    base = next((s for s in (read_experiment_scores(storage.layout, n) for n in base_names) if s is not None), None)
    if base is None:
        return dg.AssetCheckResult(
            check_name="beats_base_model",
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"no scores of a base-model experiment ({', '.join(base_names) or 'none defined'}) yet",
        )
    passed, deltas = compare_to_base(scored.scores, base.scores)
    return dg.AssetCheckResult(
        check_name="beats_base_model",
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "base_experiment": base.run.experiment,
            "benchmarks_beaten": sum(d > 0 for d in deltas.values()),
            "headline_delta": dg.MetadataValue.json(deltas),
        },
    )


predictions, eval_scores = build_evaluation_assets(default_experiments())
EVALUATION_ASSETS = [predictions, eval_scores]
