"""``gpt4scene ui``: the Dagster webserver and daemon on 127.0.0.1."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from pipelines.cli.common import Command, step
from resources.environment import PROJECT_DIR, apply_defaults


def cmd_ui(args: argparse.Namespace) -> int:
    apply_defaults(args.root)
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
    step(f"Dagster UI on http://127.0.0.1:{args.port} (Ctrl-C stops it)")
    # dagster dev must start with default SIGINT/SIGTERM: a SIGINT ignored by the launching shell (`make ui &`,
    # nohup, scripts) is inherited and dagster then ignores both signals. Handlers installed here *before* the
    # spawn are reset to the default in the child by exec; an inherited SIG_IGN would not be.
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


def ui_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default=None)
    parser.add_argument("--port", type=int, default=3000)


COMMANDS = {"ui": Command("start the Dagster webserver and daemon on 127.0.0.1", ui_arguments, cmd_ui)}
