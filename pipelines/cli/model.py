"""Model commands: ``train`` (fine-tuning through Dagster), ``infer`` (predictions) and ``serve`` (chat API)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipelines.cli.common import Command, step
from resources.environment import apply_defaults


def cmd_train(args: argparse.Namespace) -> int:
    apply_defaults(args.root)
    if args.model:
        os.environ["GPT4SCENE_BASE_MODEL"] = str(Path(args.model).resolve())
    import dagster as dg

    from pipelines.cli.demo import run_training
    from pipelines.definitions import defs

    return 0 if run_training(defs, dg.DagsterInstance.get(), recipe=args.recipe, shards=args.shards) else 1


def train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", required=True, help="recipe YAML, e.g. recipes/qwen2vl_7b_lora_sft.yaml")
    parser.add_argument("--shards", default=None, help="training shard set (default ROOT/dataset/shards/train_marked)")
    parser.add_argument("--model", default=None, help="base model folder (default $GPT4SCENE_BASE_MODEL or tiny)")
    parser.add_argument("--root", default=None, help="storage root (default ./data or $GPT4SCENE_ROOT)")


def cmd_infer(args: argparse.Namespace) -> int:
    from ops.core.errors import SceneInputError
    from ops.model.inference import InferenceSettings, chunk_path, run_inference
    from ops.model.vlm import load_vlm

    settings = InferenceSettings(
        args.batch_size, args.max_new_tokens, args.image_max_side, args.num_chunks, args.chunk_index, args.limit
    )
    out = chunk_path(args.out, args.num_chunks, args.chunk_index)
    vlm = load_vlm(args.model, args.adapter)
    try:
        stats = run_inference(
            vlm, args.eval_set, out, settings, root=args.root, log=lambda m: print(f"   {m}", flush=True)
        )
    except SceneInputError as exc:  # a bad eval row or predictions file: one line naming it, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    step(f"{out}: {stats.generated} answered, {stats.skipped} already there ({stats.samples_per_second:.2f} samples/s)")
    return 0


def infer_arguments(parser: argparse.ArgumentParser) -> None:
    from ops.core.settings import add_setting_arguments
    from ops.model.inference import InferenceSettings

    parser.add_argument("--model", required=True, help="saved Hugging Face model folder")
    parser.add_argument("--adapter", default=None, help="PEFT adapter folder on top of --model")
    parser.add_argument("--eval-set", required=True)
    parser.add_argument("--root", default=None, help="storage root (eval sets with image paths)")
    parser.add_argument("--out", required=True, help="folder for predictions_chunk_<i>_of_<C>.jsonl")
    names = ("batch_size", "max_new_tokens", "image_max_side", "num_chunks", "chunk_index", "limit")
    add_setting_arguments(parser, InferenceSettings, {name: "--" + name.replace("_", "-") for name in names})


def cmd_serve(args: argparse.Namespace) -> int:
    from ops.core.settings import setting_fields
    from ops.model.serving import ServeSettings, serve

    settings = ServeSettings(**{item.name: getattr(args, item.name) for item in setting_fields(ServeSettings)})
    serve(args.model, args.adapter, args.port, args.name, args.image_max_side, args.max_tokens, settings)
    return 0


def serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="saved Hugging Face model folder")
    parser.add_argument("--adapter", default=None, help="PEFT adapter folder on top of --model")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--name", default=None, help="model name clients send (default: the folder name)")
    parser.add_argument("--image-max-side", type=int, default=512)
    parser.add_argument("--max-tokens", type=int, default=128, help="answer cap when a request gives none")
    from ops.core.settings import add_setting_arguments, setting_fields
    from ops.model.serving import ServeSettings

    limits = [item.name for item in setting_fields(ServeSettings)]
    add_setting_arguments(parser, ServeSettings, {name: "--" + name.replace("_", "-") for name in limits})


COMMANDS = {
    "train": Command(
        "fine-tune the base model on training shards with a recipe (via Dagster)", train_arguments, cmd_train
    ),
    "infer": Command(
        "predictions JSONL of a model on an eval set (batched, resumable, chunked)", infer_arguments, cmd_infer
    ),
    "serve": Command(
        "OpenAI-compatible /v1/chat/completions for a checkpoint on 127.0.0.1", serve_arguments, cmd_serve
    ),
}
