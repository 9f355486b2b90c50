"""What the command modules share: progress lines, console logging of in-process runs, the command table entry."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

# Console logging of in-process runs: INFO and up (Dagster's default DEBUG prints every engine event).
CONSOLE_INFO = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def step(message: str) -> None:
    """A progress line: ``==> message``."""
    print(f"==> {message}", flush=True)


@dataclass(frozen=True)
class Command:
    """One subcommand: its help line, the function adding its flags (may import ops, so it runs only for the
    command being parsed) and the function running it."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
