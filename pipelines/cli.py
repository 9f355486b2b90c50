"""`gpt4scene` command line: synthetic data, scene inspection, the demo and the UI."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
# Console logging of in-process runs: INFO and up (Dagster's default DEBUG prints every engine event).
CONSOLE_INFO = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def configure_environment(root: str | None = None) -> None:
    """Default environment for a local run (set at run time, never at import): storage, Dagster home, Ray, HF."""
    defaults = {
        "GPT4SCENE_ROOT": str(Path(root).resolve()) if root else str(PROJECT_DIR / "data"),
        "DAGSTER_HOME": str(PROJECT_DIR / "dagster_home"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keep local Ray on 127.0.0.1 (STACK.md §4)
        "RAY_AUTH_MODE": "disabled",
        "EGL_PLATFORM": "surfaceless",  # Open3D offscreen rendering without a display (STACK.md §7)
        "TORCH_EXTENSIONS_DIR": str(PROJECT_DIR / ".torch_extensions"),
    }
    if root:
        os.environ["GPT4SCENE_ROOT"] = defaults["GPT4SCENE_ROOT"]
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("GPT4SCENE_RAW_ROOT", str(Path(os.environ["GPT4SCENE_ROOT"]) / "raw"))
    os.environ.setdefault("GPT4SCENE_SCANS_ROOT", "")  # empty: <raw root>/scans
    os.environ.setdefault("GPT4SCENE_RAY_ADDRESS", "")  # empty: local Ray
    os.environ.setdefault("GPT4SCENE_BASE_MODEL", "")  # empty: the tiny random Qwen2-VL under <root>/models/base
    os.environ.setdefault("GPT4SCENE_TRAIN_BACKEND", "local")  # local | ray | k8s (resources/training.py)
    os.environ.setdefault("GPT4SCENE_TRAIN_LAUNCHER", "torchrun")  # torchrun | deepspeed
    os.environ.setdefault("GPT4SCENE_TRAIN_RAY_ADDRESS", "")  # Ray dashboard address for the ray backend
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def cmd_synth(args: argparse.Namespace) -> int:
    from ops.synthetic import generate_dataset

    started = time.perf_counter()
    truth = generate_dataset(
        Path(args.out),
        n_scenes=args.scenes,
        seed=args.seed,
        n_frames=args.frames,
        color_size=(args.color_width, args.color_height),
        depth_size=(args.depth_width, args.depth_height),
    )
    for scene in truth.scenes:
        print(f"{scene.scene_id}: {len(scene.objects)} objects")
    print(f"wrote {len(truth.scenes)} scenes to {Path(args.out) / 'scans'} in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from ops.core.errors import SceneInputError
    from ops.scannet.scene import open_scene

    try:
        summary = open_scene(Path(args.scene_dir)).summary()
    except SceneInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    configure_environment(args.root)
    import dagster as dg

    from ops.dataset.samples import VARIANTS
    from pipelines.definitions import defs
    from pipelines.sensors import discover_scenes
    from resources.storage import StorageRoot

    storage = StorageRoot(root=os.environ["GPT4SCENE_ROOT"], raw_root=os.environ["GPT4SCENE_RAW_ROOT"])
    instance = dg.DagsterInstance.get()
    started = time.perf_counter()

    _step(f"generating {args.scenes} synthetic ScanNet-format scenes into {storage.raw_path}")
    run_config = {
        "ops": {"synthetic_scenes": {"config": {"n_scenes": args.scenes, "n_frames": args.frames}}},
        **CONSOLE_INFO,
    }
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        run_config=run_config, instance=instance, asset_selection=[dg.AssetKey("synthetic_scenes")]
    )
    if not result.success:
        return 1

    _step("discovering and validating scene folders (the sensor's logic)")
    found = discover_scenes(storage.scans_dir)
    for name, problems in found.invalid.items():
        print(f"   invalid: {name}: {'; '.join(problems)}")
    instance.add_dynamic_partitions("scenes", found.valid)
    print(f"   {len(found.valid)} scene partitions: {', '.join(found.valid)}")

    scene_job = defs.resolve_job_def("scene_job")
    for scene_id in found.valid:
        _step(f"scene manifest of {scene_id}")
        outcome = scene_job.execute_in_process(
            partition_key=scene_id, instance=instance, raise_on_error=False, run_config=CONSOLE_INFO
        )
        if not outcome.success:
            print(f"   FAILED: {scene_id}", file=sys.stderr)

    _step(
        f"visual prompts (point cloud, instances, BEV, {args.prompt_frames} marked frames) for "
        f"{len(found.valid)} scenes in one run over local Ray"
    )
    ok = run_visual_prompts(defs, instance, found.valid, {"n_frames": args.prompt_frames})
    if not ok:
        print("   some scenes failed: see the run in the UI", file=sys.stderr)

    _step(
        "training data: task samples, training shards and eval sets of every prepared scene, with the paper's "
        "ablation variants (no BEV, unmarked frames)"
    )
    variants = {"ops": {"task_samples": {"config": {"variants": list(VARIANTS)}}}, **CONSOLE_INFO}
    outcome = defs.resolve_job_def("dataset_job").execute_in_process(
        instance=instance, raise_on_error=False, run_config=variants
    )
    for event in outcome.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        rows = materialization.metadata.get("num_rows") or materialization.metadata.get("train_rows")
        print(
            f"   {materialization.asset_key.to_user_string()}: {rows.value if rows else '?'} rows, data version "
            f"{materialization.tags['dagster/data_version'][:12]}"
        )
    if not outcome.success:
        print("   the dataset run failed: see the run in the UI", file=sys.stderr)

    if not run_training(defs, instance):
        print("   the training run failed: see the run in the UI", file=sys.stderr)

    if not run_evaluation(defs, instance, args.eval_max_new_tokens):
        print("   the evaluation run failed: see the run in the UI", file=sys.stderr)

    _step(f"done in {time.perf_counter() - started:.0f} s")
    print(f"   raw scans:       {storage.scans_dir}")
    print(f"   scene artifacts: {storage.root_path / 'scenes'}")
    print(f"   dataset:         {storage.dataset_dir}")
    print(f"   Dagster home:    {os.environ['DAGSTER_HOME']}")
    print("   open the UI:     make ui   (then http://127.0.0.1:3000)")
    return 0


def run_training(defs, instance, recipe: str | None = None, shards: str | None = None) -> bool:
    """The base model and its fine-tuning (the definitions' recipe, or ``recipe``), printing the loss and speed."""
    import dagster as dg

    from assets.training import DEFAULT_RECIPE, base_model, build_checkpoint_asset

    recipe_path = Path(recipe).resolve() if recipe else DEFAULT_RECIPE
    _step(
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
    for event in outcome.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.to_user_string() == "checkpoint":
            m = {key: value.value for key, value in materialization.metadata.items()}
            print(
                f"   loss {m['first_loss']:.3f} -> {m['final_loss']:.3f} in {m['global_step']} steps "
                f"(resumed from {m['resumed_from']}), {m['tokens_per_second']} tokens/s, "
                f"{m['samples_per_second']} samples/s; shards {m['shards_data_version'][:12]}"
            )
            print(f"   checkpoint:      {m['path']}")
    for evaluation in outcome.get_asset_check_evaluations():
        print(f"   check {evaluation.check_name}: {'passed' if evaluation.passed else 'FAILED'}")
    return outcome.success


def cmd_train(args: argparse.Namespace) -> int:
    configure_environment(args.root)
    if args.model:
        os.environ["GPT4SCENE_BASE_MODEL"] = str(Path(args.model).resolve())
    import dagster as dg

    from pipelines.definitions import defs

    return 0 if run_training(defs, dg.DagsterInstance.get(), args.recipe, args.shards) else 1


def run_evaluation(defs, instance, max_new_tokens: int) -> bool:
    """The evaluation job (predictions of the checkpoint and the base model, then scores), printing the headline
    metric of every benchmark for each run."""
    from ops.metrics.report import HEADLINE

    _step("evaluation: the checkpoint on every eval-set variant and the base model, scored on the five benchmarks")
    run_config = {"ops": {"predictions": {"config": {"max_new_tokens": max_new_tokens}}}, **CONSOLE_INFO}
    outcome = defs.resolve_job_def("evaluation_job").execute_in_process(
        instance=instance, raise_on_error=False, run_config=run_config
    )
    for event in outcome.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.to_user_string() != "eval_scores":
            continue
        for run, scores in materialization.metadata["all_scores"].value.items():
            cells = ", ".join(
                f"{task} {metric} {100 * scores[task][metric]:.1f}"
                for task, metric in HEADLINE.items()
                if metric in scores.get(task, {})
            )
            print(f"   {run}: {cells}")
    for evaluation in outcome.get_asset_check_evaluations():
        print(f"   check {evaluation.check_name}: {'passed' if evaluation.passed else 'FAILED'}")
    return outcome.success


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


def cmd_prepare(args: argparse.Namespace) -> int:
    configure_environment(args.out)
    scans = Path(args.scans).resolve()
    os.environ["GPT4SCENE_SCANS_ROOT"] = str(scans)
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.sensors import discover_scenes

    found = discover_scenes(scans)
    for name, problems in found.invalid.items():
        print(f"skipping invalid scene folder {name}: {'; '.join(problems)}", file=sys.stderr)
    if not found.valid:
        print(f"no valid scene folders under {scans}", file=sys.stderr)
        return 2
    # A throwaway instance: prepare is a batch command; `make ui` on the same root shows the project's runs.
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("scenes", found.valid)
    config = {
        "n_frames": args.frames,
        "instance_source": args.instances,
        "pointcloud_source": args.pointcloud,
        "proposals_dir": args.proposals or "",
    }
    _step(f"preparing {len(found.valid)} scenes from {scans} into {Path(args.out).resolve() / 'scenes'}")
    started = time.perf_counter()
    ok = run_visual_prompts(defs, instance, found.valid, config)
    _step(f"{'done' if ok else 'finished with failures'} in {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


def cmd_shards(args: argparse.Namespace) -> int:
    from ops.core.errors import SceneInputError
    from ops.dataset.build import SampleSettings, ShardSettings, build_dataset

    annotations = Path(args.annotations).resolve()
    scans = Path(args.scans).resolve() if args.scans else annotations.parent / "scans"
    started = time.perf_counter()
    try:
        samples = SampleSettings(tuple(args.variant or ["marked"]), seed=args.seed, iou_threshold=args.iou_threshold)
        shards = ShardSettings(max(1, int(args.shard_mb * 2**20)), args.image_mode, args.sharegpt)
        build = build_dataset(
            Path(args.prepared).resolve(),
            scans,
            annotations,
            Path(args.out).resolve(),
            samples,
            shards,
            log=lambda message: print(f"   {message}", flush=True),
        )
    except (SceneInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for split, report in build.samples["splits"].items():
        for scene_id, reason in report["unavailable_scenes"].items():
            print(f"   {split}: left out {scene_id}: {reason}", file=sys.stderr)
    _step(
        f"wrote {Path(args.out).resolve()} in {time.perf_counter() - started:.1f} s "
        f"(samples data version {build.samples['data_version'][:12]})"
    )
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from ops.core.atomic import write_json
    from ops.core.errors import SceneInputError
    from ops.metrics import JavaNotFoundError
    from ops.metrics.eval_sets import load_any_eval_set, read_predictions, score_suite
    from ops.metrics.report import comparison_table

    predictions = Path(args.predictions)
    try:
        suite = load_any_eval_set(args.eval_set, args.root)
        scores = score_suite(
            suite,
            read_predictions(predictions, args.task),
            scanrefer_fallback=args.scanrefer_fallback,
            tasks=args.benchmark or None,
        )
    except (SceneInputError, ValueError, JavaNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else (predictions if predictions.is_dir() else predictions.parent) / "scores.json"
    write_json(
        out,
        {
            "eval_set": str(Path(args.eval_set).resolve()),
            "format": suite.kind,
            "items": suite.counts(),
            "scores": scores,
        },
    )
    print(comparison_table({"score": scores}))
    print(json.dumps(scores, indent=2))
    _step(f"wrote {out}")
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    from ops.model.inference import InferenceSettings, chunk_path, run_inference
    from ops.model.vlm import load_vlm

    settings = InferenceSettings(
        args.batch_size, args.max_new_tokens, args.image_max_side, args.num_chunks, args.chunk_index, args.limit
    )
    out = chunk_path(args.out, args.num_chunks, args.chunk_index)
    vlm = load_vlm(args.model, args.adapter)
    stats = run_inference(vlm, args.eval_set, out, settings, root=args.root, log=lambda m: print(f"   {m}", flush=True))
    _step(
        f"{out}: {stats.generated} answered, {stats.skipped} already there ({stats.samples_per_second:.2f} samples/s)"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from ops.model.serving import serve

    serve(args.model, args.adapter, args.port, args.name, args.image_max_side, args.max_tokens)
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    import json

    import cv2

    from ops.core.atomic import write_bytes
    from ops.prompts.frames import composite_grid
    from ops.prompts.writer import encode_png

    scene_dir, out = Path(args.scene), Path(args.out)
    frames = json.loads((scene_dir / "frames" / "frames.json").read_text())["frames"][:8]
    images = [cv2.cvtColor(cv2.imread(str(scene_dir / "frames" / e["file"])), cv2.COLOR_BGR2RGB) for e in frames]
    bev = cv2.cvtColor(cv2.imread(str(scene_dir / "bev" / "bev.png")), cv2.COLOR_BGR2RGB)
    write_bytes(out / f"{scene_dir.name}_bev.png", encode_png(bev))
    write_bytes(out / f"{scene_dir.name}_frames.png", encode_png(composite_grid(images, rows=2, cols=4)))
    print(f"wrote {out / f'{scene_dir.name}_bev.png'} and {out / f'{scene_dir.name}_frames.png'}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    configure_environment(args.root)
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(PROJECT_DIR / "workspace.yaml"),
        "-h",
        "127.0.0.1",
        "-p",
        str(args.port),
    ]
    _step(f"Dagster UI on http://127.0.0.1:{args.port} (Ctrl-C stops it)")
    # dagster dev must start with default SIGINT/SIGTERM: a SIGINT ignored by the launching shell (`make ui &`,
    # nohup, scripts) is inherited and dagster then ignores both signals (STACK.md §5). Handlers installed here
    # *before* the spawn are reset to the default in the child by exec; an inherited SIG_IGN would not be.
    # It runs in DAGSTER_HOME, not the project folder: `dagster dev` loads `.env` from its working directory
    # *over* the environment, which would replace --root and the user's GPT4SCENE_* with the relative defaults.
    children: list[subprocess.Popen] = []

    def forward(signum, _frame):
        if not children:  # a signal before the spawn: just stop
            sys.exit(128 + signum)
        for child in children:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    process = subprocess.Popen(command, cwd=os.environ["DAGSTER_HOME"], restore_signals=True, start_new_session=True)
    children.append(process)
    return process.wait()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpt4scene", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="write synthetic scenes in ScanNet's file formats")
    synth.add_argument("--out", required=True)
    synth.add_argument("--scenes", type=int, default=4)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--frames", type=int, default=300)
    synth.add_argument("--color-width", type=int, default=1296)
    synth.add_argument("--color-height", type=int, default=968)
    synth.add_argument("--depth-width", type=int, default=640)
    synth.add_argument("--depth-height", type=int, default=480)
    synth.set_defaults(func=cmd_synth)

    inspect_ = sub.add_parser("inspect", help="print a JSON summary of a ScanNet or synthetic scene folder")
    inspect_.add_argument("scene_dir")
    inspect_.set_defaults(func=cmd_inspect)

    demo = sub.add_parser("demo", help="run the main job on synthetic scenes through Dagster")
    demo.add_argument("--root", default=None, help="storage root (default ./data or $GPT4SCENE_ROOT)")
    demo.add_argument("--scenes", type=int, default=6)
    demo.add_argument("--frames", type=int, default=160, help="video frames per synthetic scene")
    demo.add_argument("--prompt-frames", type=int, default=8, help="marked frames sampled per scene")
    demo.add_argument("--eval-max-new-tokens", type=int, default=32, help="answer length cap of the demo's evaluation")
    demo.set_defaults(func=cmd_demo)

    train = sub.add_parser("train", help="fine-tune the base model on training shards with a recipe (via Dagster)")
    train.add_argument("--recipe", required=True, help="recipe YAML, e.g. recipes/qwen2vl_7b_lora_sft.yaml")
    train.add_argument("--shards", default=None, help="training shard set (default ROOT/dataset/shards/train_marked)")
    train.add_argument("--model", default=None, help="base model folder (default $GPT4SCENE_BASE_MODEL or tiny)")
    train.add_argument("--root", default=None, help="storage root (default ./data or $GPT4SCENE_ROOT)")
    train.set_defaults(func=cmd_train)

    prepare = sub.add_parser("prepare", help="visual prompts (DESIGN §3 layout) for every scene under a folder")
    prepare.add_argument("--scans", required=True, help="folder holding one ScanNet scene folder per scan")
    prepare.add_argument("--out", required=True, help="storage root; artifacts go to OUT/scenes/<scene_id>/")
    prepare.add_argument("--frames", type=int, default=32)
    prepare.add_argument("--instances", choices=["gt", "proposals", "clusters"], default="gt")
    prepare.add_argument("--pointcloud", choices=["mesh", "fusion"], default="mesh")
    prepare.add_argument(
        "--proposals", default=None, help="folder of <scene_id> proposal files (--instances proposals)"
    )
    prepare.set_defaults(func=cmd_prepare)

    shards = sub.add_parser("shards", help="samples, Parquet training shards and eval sets from prepared scenes")
    shards.add_argument("--prepared", required=True, help="storage root holding scenes/<scene_id>/ artifacts")
    shards.add_argument("--annotations", required=True, help="benchmark JSONs, scannetv2_<split>.txt, label TSV")
    shards.add_argument("--scans", default=None, help="raw scene folders (GT boxes); default: ANNOTATIONS/../scans")
    shards.add_argument("--out", required=True, help="dataset folder: samples/, shards/train_<variant>/, eval/")
    shards.add_argument(
        "--variant",
        action="append",
        choices=["marked", "no_bev", "unmarked"],
        help="image variant (repeatable; default marked)",
    )
    shards.add_argument("--seed", type=int, default=0)
    shards.add_argument("--iou-threshold", type=float, default=0.5)
    shards.add_argument("--shard-mb", type=float, default=512.0, help="target Parquet file size, MiB")
    shards.add_argument("--image-mode", choices=["bytes", "paths"], default="bytes")
    shards.add_argument("--sharegpt", action="store_true", help="also export the official ShareGPT JSON")
    shards.set_defaults(func=cmd_shards)

    score = sub.add_parser("score", help="score predictions on the five benchmarks (ours or GPT4Scene's formats)")
    score.add_argument(
        "--predictions",
        required=True,
        help="predictions .jsonl, a GPT4Scene predictions_chunk_<i>.json, or a folder of qwenvl_<task>/ folders",
    )
    score.add_argument("--eval-set", required=True, help="our eval set folder, or GPT4Scene's evaluate/annotation/")
    score.add_argument("--root", default=None, help="storage root (default: the one the eval set sits in)")
    score.add_argument(
        "--task", default=None, help="task of a single GPT4Scene predictions file outside qwenvl_<task>/"
    )
    score.add_argument(
        "--benchmark",
        action="append",
        choices=["scanqa", "sqa3d", "scanrefer", "multi3drefer", "scan2cap"],
        help="score only these (repeatable; default all)",
    )
    score.add_argument(
        "--scanrefer-fallback",
        choices=["zero", "random", "miss"],
        default="zero",
        help="ScanRefer answer without an ID: proposal 0 (GPT4Scene), random (Chat-Scene), or a miss",
    )
    score.add_argument("--out", default=None, help="scores JSON (default scores.json beside the predictions)")
    score.set_defaults(func=cmd_score)

    infer = sub.add_parser("infer", help="predictions JSONL of a model on an eval set (batched, resumable, chunked)")
    infer.add_argument("--model", required=True, help="saved Hugging Face model folder")
    infer.add_argument("--adapter", default=None, help="PEFT adapter folder on top of --model")
    infer.add_argument("--eval-set", required=True)
    infer.add_argument("--root", default=None, help="storage root (eval sets with image paths)")
    infer.add_argument("--out", required=True, help="folder for predictions_chunk_<i>_of_<C>.jsonl")
    infer.add_argument("--batch-size", type=int, default=8)
    infer.add_argument("--max-new-tokens", type=int, default=128)
    infer.add_argument("--image-max-side", type=int, default=512)
    infer.add_argument("--num-chunks", type=int, default=1, help="split the rows over this many processes/GPUs")
    infer.add_argument("--chunk-index", type=int, default=0)
    infer.add_argument("--limit", type=int, default=None, help="only the first N rows (sample_id order)")
    infer.set_defaults(func=cmd_infer)

    serve = sub.add_parser("serve", help="OpenAI-compatible /v1/chat/completions for a checkpoint on 127.0.0.1")
    serve.add_argument("--model", required=True, help="saved Hugging Face model folder")
    serve.add_argument("--adapter", default=None, help="PEFT adapter folder on top of --model")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--name", default=None, help="model name clients send (default: the folder name)")
    serve.add_argument("--image-max-side", type=int, default=512)
    serve.add_argument("--max-tokens", type=int, default=128, help="answer cap when a request gives none")
    serve.set_defaults(func=cmd_serve)

    figures = sub.add_parser("figures", help="BEV and a 2x4 contact sheet of marked frames of a prepared scene")
    figures.add_argument("scene", help="a prepared scene folder, e.g. data/scenes/scene0000_00")
    figures.add_argument("--out", default="docs/images")
    figures.set_defaults(func=cmd_figures)

    ui = sub.add_parser("ui", help="start the Dagster webserver and daemon on 127.0.0.1")
    ui.add_argument("--root", default=None)
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
