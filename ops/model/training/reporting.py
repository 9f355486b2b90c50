"""Where the training process reports: the ``Reporter`` protocol, and the console and silent reporters.

Only rank 0 reports. Under Dagster the worker (``resources.training_worker``) passes a Pipes reporter instead; the
record kinds below are what it sends and what the training asset reads back.
"""

from __future__ import annotations

import json
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
    return (
        f"step {record['step']}/{record['max_steps']} loss {record['loss']:.4f} lr {record['learning_rate']:.3g} "
        f"{record['tokens_per_second']:.0f} tokens/s {record['samples_per_second']:.2f} samples/s"
    )


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


@contextmanager
def console_reporter(rank: int) -> Iterator[Reporter]:
    """The reporter of a process started outside Dagster: the console on rank 0, silent elsewhere."""
    yield ConsoleReporter() if rank == 0 else SilentReporter()
