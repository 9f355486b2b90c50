"""Scene commands: ``synth``, ``inspect``, ``prepare`` and ``figures``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from pipelines.cli.common import Command, step
from resources.environment import apply_defaults


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


def synth_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True)
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--color-width", type=int, default=1296)
    parser.add_argument("--color-height", type=int, default=968)
    parser.add_argument("--depth-width", type=int, default=640)
    parser.add_argument("--depth-height", type=int, default=480)


def cmd_inspect(args: argparse.Namespace) -> int:
    from ops.core.errors import SceneInputError
    from ops.scannet.scene import open_scene

    try:
        summary = open_scene(Path(args.scene_dir)).summary()
        text = json.dumps(summary, indent=2, sort_keys=True, allow_nan=False)  # NaN is not JSON
    except SceneInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {args.scene_dir}: the summary holds a non-finite number ({exc})", file=sys.stderr)
        return 2
    print(text)
    return 0


def inspect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scene_dir")


def cmd_prepare(args: argparse.Namespace) -> int:
    apply_defaults(args.out)
    scans = Path(args.scans).resolve()
    os.environ["GPT4SCENE_SCANS_ROOT"] = str(scans)
    import dagster as dg

    from ops.scannet.scene import discover_scenes
    from pipelines.cli.demo import run_visual_prompts
    from pipelines.definitions import defs

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
        "n_frames": args.n_frames,
        "instance_source": args.instance_source,
        "pointcloud_source": args.pointcloud_source,
        "proposals_dir": args.proposals_dir,
    }
    step(f"preparing {len(found.valid)} scenes from {scans} into {Path(args.out).resolve() / 'scenes'}")
    started = time.perf_counter()
    ok = run_visual_prompts(defs, instance, found.valid, config)
    step(f"{'done' if ok else 'finished with failures'} in {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


def prepare_arguments(parser: argparse.ArgumentParser) -> None:
    from ops.core.settings import add_setting_arguments
    from ops.prompts.driver import PromptSettings

    parser.add_argument("--scans", required=True, help="folder holding one ScanNet scene folder per scan")
    parser.add_argument("--out", required=True, help="storage root; artifacts go to OUT/scenes/<scene_id>/")
    flags = {
        "n_frames": "--frames",
        "instance_source": "--instances",
        "pointcloud_source": "--pointcloud",
        "proposals_dir": "--proposals",
    }
    add_setting_arguments(parser, PromptSettings, flags)


def cmd_figures(args: argparse.Namespace) -> int:
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


def figures_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scene", help="a prepared scene folder, e.g. data/scenes/scene0000_00")
    parser.add_argument("--out", default="docs/images")


COMMANDS = {
    "synth": Command("write synthetic scenes in ScanNet's file formats", synth_arguments, cmd_synth),
    "inspect": Command("print a JSON summary of a ScanNet or synthetic scene folder", inspect_arguments, cmd_inspect),
    "prepare": Command(
        "visual prompts (the per-scene artifact layout) for every scene under a folder", prepare_arguments, cmd_prepare
    ),
    "figures": Command(
        "BEV and a 2x4 contact sheet of marked frames of a prepared scene", figures_arguments, cmd_figures
    ),
}
