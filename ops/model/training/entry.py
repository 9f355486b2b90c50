"""Command line of one training process, as launchers start it: ``python -m ops.model.training`` (console) or, under
Dagster, ``python -m resources.training_worker`` (the same command line, reporting through Pipes).

torchrun and the deepspeed launcher set ``RANK``/``LOCAL_RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``;
the deepspeed launcher also appends ``--local_rank=N``, accepted here and otherwise ignored. Started alone (plain
``python``), the process sets a single-process world itself, as DeepSpeed needs one even on CPU (docs/REFERENCE.md
§5.3).
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from ops.model.training.reporting import Reporter, console_reporter
from ops.model.training.trainer import TrainRequest, train


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.model.training", description=__doc__)
    parser.add_argument("--recipe", required=True, help="recipe YAML")
    parser.add_argument("--model", required=True, help="base model folder (Hugging Face layout)")
    parser.add_argument("--shards", required=True, help="training shard set (ops.dataset.shards layout)")
    parser.add_argument("--run-dir", required=True, help="Trainer checkpoints and the final weights")
    parser.add_argument("--image-root", default=None, help="storage root, for shards holding image paths")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def main(
    argv: list[str] | None = None,
    open_reporter: Callable[[int], AbstractContextManager[Reporter]] = console_reporter,
) -> int:
    """Train one process's share of a recipe; ``open_reporter(rank)`` says where progress goes."""
    args = build_parser().parse_args(argv)
    if "RANK" not in os.environ:  # no launcher: a world of one
        os.environ.update(
            {
                "RANK": "0",
                "LOCAL_RANK": "0",
                "WORLD_SIZE": "1",
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(free_port()),
            }
        )
    request = TrainRequest(
        Path(args.recipe),
        Path(args.model),
        Path(args.shards),
        Path(args.run_dir),
        Path(args.image_root) if args.image_root else None,
    )
    with open_reporter(int(os.environ["RANK"])) as reporter:
        train(request, reporter)
    return 0
