"""The experiments (``recipes/experiments/*.yaml``) as Dagster partitions, and the data variants they map to.

Static partitions, read when the definitions load (docs/ARCHITECTURE.md, Experiments): an experiment is code (a
reviewed file whose hash is in every lineage), so its partitions appear and disappear with the code location, and a
static mapping ties each experiment to the partition of its data variant, so rebuilding one variant's shards makes
only the experiments on that variant stale.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from ops.dataset.samples import VARIANTS
from ops.model.experiments import Experiment, load_experiment, load_experiments
from resources.training import PROJECT_DIR

EXPERIMENTS_DIR = PROJECT_DIR / "recipes" / "experiments"
Experiments = Mapping[str, Experiment]

variant_partitions = dg.StaticPartitionsDefinition(list(VARIANTS))


def default_experiments() -> dict[str, Experiment]:
    """The project's experiments, from ``recipes/experiments/``."""
    return load_experiments(EXPERIMENTS_DIR)


def experiment_partitions(experiments: Experiments) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(list(experiments))


def variant_mapping(experiments: Experiments, trained_only: bool) -> dg.StaticPartitionMapping:
    """Data-variant partition → the experiments that use it (only those that train, if ``trained_only``)."""
    by_variant: dict[str, list[str]] = {}
    for name, experiment in experiments.items():
        if experiment.trains or not trained_only:
            by_variant.setdefault(experiment.data_variant, []).append(name)
    return dg.StaticPartitionMapping(by_variant)


def build_recipe_asset(experiments: Experiments) -> dg.SourceAsset:
    """`experiment_recipe`: each experiment's file, observed. Its data version is the experiment's hash (recipe,
    DeepSpeed config and experiment keys), so editing a recipe and observing it makes only that experiment's
    checkpoint stale. Dagster allows one code version per asset, not per partition, hence a source asset."""

    @dg.observable_source_asset(
        name="experiment_recipe",
        partitions_def=experiment_partitions(experiments),
        group_name="training",
        description="The experiment files (recipes/experiments/), observed: data version = experiment hash.",
    )
    def experiment_recipe(context: dg.OpExecutionContext) -> dg.DataVersionsByPartition:
        versions = {name: load_experiment(experiment.path).hash for name, experiment in experiments.items()}
        context.log.info(f"observed {len(versions)} experiment files")
        return dg.DataVersionsByPartition(versions)

    return experiment_recipe


experiment_recipe = build_recipe_asset(default_experiments())
