"""The training process the `TrainingLauncher` starts: ``ops.model.training``'s command line, reporting through Pipes.

torchrun / the deepspeed launcher / Ray run ``python -m resources.training_worker ARGS`` (the arguments of
``ops.model.training.entry``). Rank 0 sends log lines and ``{"kind": "progress" | "summary", ...}`` custom messages over
Dagster Pipes (``dagster_pipes``, the dependency-free protocol package) when Dagster launched the process
(``DAGSTER_PIPES_CONTEXT`` is set); otherwise it reports to the console like ``python -m ops.model.training``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ops.model.training.entry import main
from ops.model.training.reporting import PROGRESS, SUMMARY, Reporter, SilentReporter, console_reporter, progress_line

PIPES_CONTEXT_ENV = "DAGSTER_PIPES_CONTEXT"


class PipesReporter:
    """Rank 0 under Dagster: log lines and custom messages."""

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
def pipes_reporter(rank: int) -> Iterator[Reporter]:
    """Pipes on rank 0 when Dagster launched the process; silent on other ranks; the console otherwise."""
    if rank != 0:
        yield SilentReporter()
    elif os.environ.get(PIPES_CONTEXT_ENV):
        from dagster_pipes import open_dagster_pipes

        with open_dagster_pipes() as pipes:
            yield PipesReporter(pipes)
    else:
        print("[train] not launched through Dagster Pipes: reporting to the console", file=sys.stderr)
        with console_reporter(rank) as reporter:
            yield reporter


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], open_reporter=pipes_reporter))
