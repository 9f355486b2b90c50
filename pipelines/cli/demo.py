"""``gpt4scene demo`` and the in-process runs it chains (also used by ``prepare`` and ``train``): synthetic scenes,
scene manifests, visual prompts over local Ray, the dataset, training and evaluation, each printing a summary."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipelines.cli.common import CONSOLE_INFO, Command, step
from resources.environment import apply_defaults


def materializations(outcome: Any, asset: str | None = None) -> Iterator[tuple[str, dict[str, Any], dict[str, str]]]:
    """(asset key, metadata values, tags) of each materialisation of an in-process run (of ``asset`` only if
    given)."""
    for event in outcome.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        key = materialization.asset_key.to_user_string()
        if asset is None or key == asset:
            yield key, {name: value.value for name, value in materialization.metadata.items()}, materialization.tags


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


def run_dataset(defs, instance) -> bool:
    """The dataset job with every ablation variant, printing each asset's rows and data version."""
    from ops.dataset.samples import VARIANTS

    variants = {"ops": {"task_samples": {"config": {"variants": list(VARIANTS)}}}, **CONSOLE_INFO}
    outcome = defs.resolve_job_def("dataset_job").execute_in_process(
        instance=instance, raise_on_error=False, run_config=variants
    )
    for key, metadata, tags in materializations(outcome):
        rows = metadata.get("num_rows", metadata.get("train_rows", "?"))
        print(f"   {key}: {rows} rows, data version {tags['dagster/data_version'][:12]}")
    return outcome.success


def run_training(defs, instance, recipe: str | None = None, shards: str | None = None) -> bool:
    """The base model and its fine-tuning (the definitions' recipe, or ``recipe``), printing the loss and speed."""
    import dagster as dg

    from assets.training import DEFAULT_RECIPE, base_model, build_checkpoint_asset

    recipe_path = Path(recipe).resolve() if recipe else DEFAULT_RECIPE
    step(
        f"training: {recipe_path.name} on the training shards, through the {os.environ['GPT4SCENE_TRAIN_LAUNCHER']} "
        f"launcher ({os.environ['GPT4SCENE_TRAIN_BACKEND']} backend, Dagster Pipes)"
    )
    run_config = {
        "ops": {"checkpoint": {"config": {"shards_dir": str(Path(shards).resolve()) if shards else ""}}},
        **CONSOLE_INFO,
    }
    if recipe is None:
        outcome = defs.resolve_job_def("training_job").execute_in_process(
            instance=instance, raise_on_error=False, run_config=run_config
        )
    else:  # another recipe is another code version of `checkpoint`: materialise the asset built for it
        checkpoint, checks = build_checkpoint_asset(recipe_path)
        outcome = dg.materialize(
            [base_model, checkpoint, *checks],
            instance=instance,
            resources=defs.resources,
            run_config=run_config,
            raise_on_error=False,
        )
    for _, m, _ in materializations(outcome, "checkpoint"):
        print(
            f"   loss {m['first_loss']:.3f} -> {m['final_loss']:.3f} in {m['global_step']} steps "
            f"(resumed from {m['resumed_from']}), {m['tokens_per_second']} tokens/s, "
            f"{m['samples_per_second']} samples/s; shards {m['shards_data_version'][:12]}"
        )
        print(f"   checkpoint:      {m['path']}")
    print_checks(outcome)
    return outcome.success


def run_evaluation(defs, instance, max_new_tokens: int) -> bool:
    """The evaluation job (predictions of the checkpoint and the base model, then scores), printing the headline
    metric of every benchmark for each run."""
    from ops.metrics.report import HEADLINE

    step("evaluation: the checkpoint on every eval-set variant and the base model, scored on the five benchmarks")
    run_config = {"ops": {"predictions": {"config": {"max_new_tokens": max_new_tokens}}}, **CONSOLE_INFO}
    outcome = defs.resolve_job_def("evaluation_job").execute_in_process(
        instance=instance, raise_on_error=False, run_config=run_config
    )
    for _, metadata, _ in materializations(outcome, "eval_scores"):
        for run, scores in metadata["all_scores"].items():
            cells = ", ".join(
                f"{task} {metric} {100 * scores[task][metric]:.1f}"
                for task, metric in HEADLINE.items()
                if metric in scores.get(task, {})
            )
            print(f"   {run}: {cells}")
    print_checks(outcome)
    return outcome.success


def cmd_demo(args: argparse.Namespace) -> int:
    apply_defaults(args.root)
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.sensors import discover_scenes
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
        "training data: task samples, training shards and eval sets of every prepared scene, with the paper's "
        "ablation variants (no BEV, unmarked frames)"
    )
    if not run_dataset(defs, instance):
        print("   the dataset run failed: see the run in the UI", file=sys.stderr)

    if not run_training(defs, instance):
        print("   the training run failed: see the run in the UI", file=sys.stderr)

    if not run_evaluation(defs, instance, args.eval_max_new_tokens):
        print("   the evaluation run failed: see the run in the UI", file=sys.stderr)

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
