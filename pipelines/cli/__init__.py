"""`gpt4scene` command line.

Scenes (``pipelines.cli.scenes``):
  synth     write synthetic scenes in ScanNet's file formats
  inspect   print a JSON summary of a ScanNet or synthetic scene folder
  prepare   visual prompts for every scene under a folder (through Dagster, over local Ray)
  figures   BEV and a 2x4 contact sheet of marked frames of a prepared scene
Dataset (``pipelines.cli.dataset``):
  shards    samples, Parquet training shards and eval sets from prepared scenes
  score     score predictions on the five benchmarks (ours or GPT4Scene's formats)
Model (``pipelines.cli.model``):
  train     fine-tune the base model on training shards with a recipe (via Dagster)
  infer     predictions JSONL of a model on an eval set (batched, resumable, chunked)
  serve     OpenAI-compatible /v1/chat/completions for a checkpoint on 127.0.0.1
Ask (``pipelines.cli.ask``):
  ask       answer a question about a capture or scene; draw the objects the answer names
Lineage (``pipelines.cli.lineage``):
  lineage   a checkpoint's chain back to the scans, or every checkpoint trained on a scene
Demo and UI (``pipelines.cli.demo``, ``pipelines.cli.ui``):
  demo      run the main job on synthetic scenes through Dagster
  ui        start the Dagster webserver and daemon on 127.0.0.1

Flags that set a pipeline knob take their default, help and choices from the ops settings dataclass
(``ops.core.settings``); commands that run Dagster apply ``resources.environment``'s defaults first.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Collection

from pipelines.cli import ask, dataset, demo, lineage, model, scenes, ui
from pipelines.cli.ask import cmd_ask
from pipelines.cli.dataset import cmd_score, cmd_shards
from pipelines.cli.demo import cmd_demo
from pipelines.cli.lineage import cmd_lineage
from pipelines.cli.model import cmd_infer, cmd_serve, cmd_train
from pipelines.cli.scenes import cmd_figures, cmd_inspect, cmd_prepare, cmd_synth
from pipelines.cli.ui import cmd_ui

COMMANDS = {
    **scenes.COMMANDS,
    **dataset.COMMANDS,
    **model.COMMANDS,
    **ask.COMMANDS,
    **lineage.COMMANDS,
    **demo.COMMANDS,
    **ui.COMMANDS,
}
__all__ = [
    "COMMANDS",
    "build_parser",
    "cmd_ask",
    "cmd_demo",
    "cmd_figures",
    "cmd_infer",
    "cmd_inspect",
    "cmd_lineage",
    "cmd_prepare",
    "cmd_score",
    "cmd_serve",
    "cmd_shards",
    "cmd_synth",
    "cmd_train",
    "cmd_ui",
    "main",
]


def build_parser(with_flags: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with ``with_flags``, only those commands get their flags (adding flags may import
    the heavy ops modules their defaults come from)."""
    parser = argparse.ArgumentParser(
        prog="gpt4scene", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command_parser = sub.add_parser(name, help=command.help, description=command.help)
        if with_flags is None or name in with_flags:
            command.add_arguments(command_parser)
        command_parser.set_defaults(func=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command of ``argv`` (default: the process's arguments) and return its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(with_flags={chosen}).parse_args(argv)
    return args.func(args)
