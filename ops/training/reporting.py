"""Where the training process reports: Dagster Pipes when a Dagster asset launched it, else the console.

Only rank 0 reports. ``dagster_pipes`` is the dependency-free Pipes protocol package (not Dagster itself); it is
imported only when the process was started through Pipes (``DAGSTER_PIPES_CONTEXT`` in the environment).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

PIPES_CONTEXT_ENV = "DAGSTER_PIPES_CONTEXT"
PROGRESS, SUMMARY = "progress", "summary"


class Reporter(Protocol):
    def log(self, message: str) -> None: ...

    def progress(self, record: dict[str, Any]) -> None: ...

    def summary(self, summary: dict[str, Any]) -> None: ...


def progress_line(record: dict[str, Any]) -> str:
    """One human-readable line of a progress record."""
    return (f"step {record['step']}/{record['max_steps']} loss {record['loss']:.4f} lr {record['learning_rate']:.3g} "
            f"{record['tokens_per_second']:.0f} tokens/s {record['samples_per_second']:.2f} samples/s")  # fmt: skip


class ConsoleReporter:
    """Rank 0 outside Dagster: progress lines on stdout."""

    def log(self, message: str) -> None:
        print(f"[train] {message}", flush=True)

    def progress(self, record: dict[str, Any]) -> None:
        self.log(progress_line(record))

    def summary(self, summary: dict[str, Any]) -> None:
        self.log("summary " + json.dumps({k: v for k, v in summary.items() if k != "log_history"}, sort_keys=True))


class SilentReporter:
    """Ranks other than 0."""

    def log(self, message: str) -> None:
        pass

    def progress(self, record: dict[str, Any]) -> None:
        pass

    def summary(self, summary: dict[str, Any]) -> None:
        pass


class PipesReporter:
    """Rank 0 under Dagster: log lines and custom messages (``{"kind": "progress"|"summary", ...}``)."""

    def __init__(self, pipes: Any):
        self.pipes = pipes

    def log(self, message: str) -> None:
        self.pipes.log.info(message)

    def progress(self, record: dict[str, Any]) -> None:
        self.pipes.log.info(progress_line(record))
        self.pipes.report_custom_message({"kind": PROGRESS, **record})

    def summary(self, summary: dict[str, Any]) -> None:
        self.pipes.report_custom_message({"kind": SUMMARY, **summary})


@contextmanager
def open_reporter(rank: int) -> Iterator[Reporter]:
    """The reporter of this process: Pipes (rank 0 launched by Dagster), console (rank 0) or silent."""
    if rank != 0:
        yield SilentReporter()
    elif os.environ.get(PIPES_CONTEXT_ENV):
        from dagster_pipes import open_dagster_pipes

        with open_dagster_pipes() as pipes:
            yield PipesReporter(pipes)
    else:
        print("[train] not launched through Dagster Pipes: reporting to the console", file=sys.stderr)
        yield ConsoleReporter()
