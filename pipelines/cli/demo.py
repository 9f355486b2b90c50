"""``gpt4scene demo`` and the in-process runs it chains (also used by ``prepare`` and ``train``): synthetic scenes,
scene manifests, visual prompts over local Ray, the dataset (every data variant), the experiments' training and
evaluation, then the leaderboard, each printing a summary."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pipelines.cli.common import CONSOLE_INFO, Command, step
from resources.environment import apply_defaults


def materializations(outcome: Any, asset: str | None = None) -> Iterator[tuple[str, dict[str, Any], dict[str, str]]]:
    """(asset key with ``[partition]`` if any, metadata values, tags) of each materialisation of an in-process run
    (of ``asset`` only if given)."""
    for event in outcome.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        key = materialization.asset_key.to_user_string()
        if asset is None or key == asset:
            label = key if materialization.partition is None else f"{key}[{materialization.partition}]"
            yield label, {name: value.value for name, value in materialization.metadata.items()}, materialization.tags


def print_checks(outcome: Any) -> None:
    """One line per asset check evaluated in an in-process run."""
    for evaluation in outcome.get_asset_check_evaluations():
        print(f"   check {evaluation.check_name}: {'passed' if evaluation.passed else 'FAILED'}")


def run_visual_prompts(defs, instance, scene_ids: list[str], config: dict) -> bool:
    """One run of the visual-prompt assets over ``scene_ids`` (a partition range), fanned out through Ray."""
    from assets.partitions import partition_range_tags

    job = defs.resolve_job_def("visual_prompts_job")
    keys = instance.get_dynamic_partitions("scenes")
    positions = sorted(keys.index(scene_id) for scene_id in scene_ids)
    if positions != list(range(positions[0], positions[-1] + 1)):
        raise ValueError("the scenes must form a contiguous range of the registered partitions")
    result = job.execute_in_process(
        run_config={"ops": {"visual_prompts": {"config": config}}, **CONSOLE_INFO},
        instance=instance,
        tags=partition_range_tags(keys[positions[0]], keys[positions[-1]]),
        raise_on_error=False,
    )
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                print(f"   check failed: {evaluation.partition} {evaluation.check_name}", file=sys.stderr)
    return result.success


# The experiments the demo trains and evaluates (recipes/experiments/): the base model, GPT4Scene's marked input
# and the unmarked ablation.
DEMO_EXPERIMENTS = ("base", "tiny_marked", "tiny_unmarked")


def run_dataset(defs, instance) -> bool:
    """The task samples with every data variant, then the shards and eval set of each variant (one partition run
    each), printing each asset's rows and data version."""
    from ops.dataset.samples import VARIANTS

    variants = {"ops": {"task_samples": {"config": {"variants": list(VARIANTS)}}}, **CONSOLE_INFO}
    outcomes = [
        defs.resolve_job_def("samples_job").execute_in_process(
            instance=instance, raise_on_error=False, run_config=variants
        )
    ]
    for variant in VARIANTS:
        outcomes.append(
            defs.resolve_job_def("dataset_job").execute_in_process(
                instance=instance, raise_on_error=False, run_config=CONSOLE_INFO, partition_key=variant
            )
        )
    for outcome in outcomes:
        for key, metadata, tags in materializations(outcome):
            rows = metadata.get("num_rows", metadata.get("train_rows", "?"))
            print(f"   {key}: {rows} rows, data version {tags['dagster/data_version'][:12]}")
    return all(outcome.success for outcome in outcomes)


def _print_checkpoint(outcome: Any) -> None:
    for _, m, _ in materializations(outcome, "checkpoint"):
        if m["weights"] == "base_model":
            print(f"   {m['experiment']} {m['version']}: the base model itself (nothing trained)")
            continue
        print(
            f"   {m['experiment']} {m['version']}: loss {m['first_loss']:.3f} -> {m['final_loss']:.3f} in "
            f"{m['global_step']} steps (resumed from {m['resumed_from']}), {m['tokens_per_second']} tokens/s, "
            f"{m['samples_per_second']} samples/s; shards {m['shards_data_version'][:12]}, "
            f"{m['train_scenes']} train scenes"
        )
        print(f"   checkpoint:      {m['path']}")
        if m["pruned"]:
            print(f"   pruned:          {', '.join(m['pruned'])}")
    print_checks(outcome)


def run_training(
    defs, instance, experiments: Sequence[str] = DEMO_EXPERIMENTS, recipe: str | None = None, shards: str | None = None
) -> bool:
    """The base model, then one checkpoint version per experiment (partitions of `checkpoint`); or, with
    ``recipe``, that file as a one-off experiment (its name is the file's), printing the loss and speed."""
    import dagster as dg

    from assets.training import base_model, build_checkpoint_asset
    from ops.model.experiments import load_experiment

    shards_config = {"shards_dir": str(Path(shards).resolve()) if shards else ""}
    run_config = {"ops": {"checkpoint": {"config": shards_config}}, **CONSOLE_INFO}
    if recipe is not None:  # a recipe outside recipes/experiments/: one experiment of its own
        experiment = load_experiment(recipe)
        step(f"training: {experiment.name} ({experiment.path.name}) on the {experiment.data_variant} shards")
        outcome = dg.materialize(
            [base_model, build_checkpoint_asset({experiment.name: experiment})],
            instance=instance,
            resources=defs.resources,
            run_config=run_config,
            partition_key=experiment.name,
            raise_on_error=False,
        )
        _print_checkpoint(outcome)
        return outcome.success
    outcome = defs.resolve_job_def("base_model_job").execute_in_process(
        instance=instance, raise_on_error=False, run_config=CONSOLE_INFO
    )
    success = outcome.success
    for name in experiments:
        step(
            f"training: experiment {name} through the {os.environ['GPT4SCENE_TRAIN_LAUNCHER']} launcher "
            f"({os.environ['GPT4SCENE_TRAIN_BACKEND']} backend, Dagster Pipes)"
        )
        outcome = defs.resolve_job_def("training_job").execute_in_process(
            instance=instance, raise_on_error=False, run_config=run_config, partition_key=name
        )
        _print_checkpoint(outcome)
        success = success and outcome.success
    return success


def run_evaluation(defs, instance, max_new_tokens: int, experiments: Sequence[str] = DEMO_EXPERIMENTS) -> bool:
    """The evaluation job of each experiment (its predictions on the eval set of its variant, then scores),
    printing the headline metric of every benchmark."""
    from ops.metrics.report import HEADLINE

    run_config = {"ops": {"predictions": {"config": {"max_new_tokens": max_new_tokens}}}, **CONSOLE_INFO}
    success = True
    for name in experiments:
        step(f"evaluation: experiment {name} on the eval set of its data variant, scored on the five benchmarks")
        outcome = defs.resolve_job_def("evaluation_job").execute_in_process(
            instance=instance, raise_on_error=False, run_config=run_config, partition_key=name
        )
        for _, metadata, _ in materializations(outcome, "eval_scores"):
            scores = metadata["all_scores"]
            cells = ", ".join(
                f"{task} {metric} {100 * scores[task][metric]:.1f}"
                for task, metric in HEADLINE.items()
                if metric in scores.get(task, {})
            )
            print(f"   {name} {metadata['checkpoint_version']}: {cells}")
        print_checks(outcome)
        success = success and outcome.success
    return success


def run_leaderboard(defs, instance) -> bool:
    """The leaderboard job, printing the table."""
    step("leaderboard: every experiment's latest scores with their lineage, and the published rows")
    outcome = defs.resolve_job_def("leaderboard_job").execute_in_process(
        instance=instance, raise_on_error=False, run_config=CONSOLE_INFO
    )
    for _, metadata, _ in materializations(outcome, "leaderboard"):
        print(metadata["leaderboard"])
        print(f"\n   also as {metadata['csv']} and {metadata['json']}")
    return outcome.success


def cmd_demo(args: argparse.Namespace) -> int:
    apply_defaults(args.root)
    import dagster as dg

    from ops.scannet.scene import discover_scenes
    from pipelines.definitions import defs
    from resources.storage import StorageRoot

    storage = StorageRoot(root=os.environ["GPT4SCENE_ROOT"], raw_root=os.environ["GPT4SCENE_RAW_ROOT"])
    instance = dg.DagsterInstance.get()
    started = time.perf_counter()

    step(f"generating {args.scenes} synthetic ScanNet-format scenes into {storage.raw_path}")
    run_config = {
        "ops": {"synthetic_scenes": {"config": {"n_scenes": args.scenes, "n_frames": args.frames}}},
        **CONSOLE_INFO,
    }
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        run_config=run_config, instance=instance, asset_selection=[dg.AssetKey("synthetic_scenes")]
    )
    if not result.success:
        return 1

    step("discovering and validating scene folders (the sensor's logic)")
    found = discover_scenes(storage.scans_dir)
    for name, problems in found.invalid.items():
        print(f"   invalid: {name}: {'; '.join(problems)}")
    instance.add_dynamic_partitions("scenes", found.valid)
    print(f"   {len(found.valid)} scene partitions: {', '.join(found.valid)}")
    observed = defs.resolve_job_def("observe_raw_scans").execute_in_process(instance=instance, run_config=CONSOLE_INFO)
    print(f"   raw scans fingerprinted (the lineage's raw-scan versions): {'ok' if observed.success else 'FAILED'}")

    scene_job = defs.resolve_job_def("scene_job")
    for scene_id in found.valid:
        step(f"scene manifest of {scene_id}")
        outcome = scene_job.execute_in_process(
            partition_key=scene_id, instance=instance, raise_on_error=False, run_config=CONSOLE_INFO
        )
        if not outcome.success:
            print(f"   FAILED: {scene_id}", file=sys.stderr)

    step(
        f"visual prompts (point cloud, instances, BEV, {args.prompt_frames} marked frames) for "
        f"{len(found.valid)} scenes in one run over local Ray"
    )
    if not run_visual_prompts(defs, instance, found.valid, {"n_frames": args.prompt_frames}):
        print("   some scenes failed: see the run in the UI", file=sys.stderr)

    step(
        "training data: task samples of every prepared scene, then the training shards and eval set of each data "
        "variant (GPT4Scene's marked input and the paper's ablations: no BEV, unmarked frames)"
    )
    if not run_dataset(defs, instance):
        print("   the dataset run failed: see the run in the UI", file=sys.stderr)

    if not run_training(defs, instance):
        print("   the training run failed: see the run in the UI", file=sys.stderr)

    if not run_evaluation(defs, instance, args.eval_max_new_tokens):
        print("   the evaluation run failed: see the run in the UI", file=sys.stderr)

    if not run_leaderboard(defs, instance):
        print("   the leaderboard run failed: see the run in the UI", file=sys.stderr)

    step(f"done in {time.perf_counter() - started:.0f} s")
    print(f"   raw scans:       {storage.scans_dir}")
    print(f"   scene artifacts: {storage.root_path / 'scenes'}")
    print(f"   dataset:         {storage.dataset_dir}")
    print(f"   Dagster home:    {os.environ['DAGSTER_HOME']}")
    print("   open the UI:     make ui   (then http://127.0.0.1:3000)")
    return 0


def demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default=None, help="storage root (default ./data or $GPT4SCENE_ROOT)")
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--frames", type=int, default=160, help="video frames per synthetic scene")
    parser.add_argument("--prompt-frames", type=int, default=8, help="marked frames sampled per scene")
    parser.add_argument(
        "--eval-max-new-tokens", type=int, default=32, help="answer length cap of the demo's evaluation"
    )


COMMANDS = {"demo": Command("run the main job on synthetic scenes through Dagster", demo_arguments, cmd_demo)}
