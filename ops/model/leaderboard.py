"""The leaderboard: every experiment's latest scores in one table with its lineage, and the published rows.

One row per experiment that has scores (``evaluation/scores/<experiment>/summary.json``): its headline metric on each
benchmark (x100) and the lineage of the checkpoint version scored, read from that version's ``lineage.json``: train
shard data version, number of train scenes, recipe hash, base-model fingerprint, code commit and date. A zero-shot
experiment (an endpoint, no checkpoint) is a row of kind ``zero-shot``: version ``endpoint``, fine-tuning
``zero-shot``, no train shards, scenes or recipe, and in the base-model column the endpoint's model name and base URL
(``model @ url``, shown whole) instead of a fingerprint; its code commit and date are those of its prediction run
(``evaluation/predictions/<experiment>/run.json``). Then
GPT4Scene's published rows and its 2026 peers (``ops.metrics.report.PUBLISHED_ROWS``, docs/REFERENCE.md §2.12-2.13)
for reference. This is the paper's ablation table, built from real runs. Written as ``evaluation/leaderboard.md``,
``.csv`` and ``.json``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ops.core.atomic import write_json, write_text
from ops.core.fingerprint import content_hash
from ops.core.layout import StorageLayout
from ops.metrics.report import HEADLINE, PUBLISHED_ROWS
from ops.metrics.scoring import read_experiment_scores
from ops.model.training.checkpoint import LINEAGE_FILE

COLUMNS = (
    "experiment",
    "version",
    "variant",
    "frames",
    "finetuning",
    *(f"{task} {metric}" for task, metric in HEADLINE.items()),
    "train shards",
    "train scenes",
    "recipe",
    "base model",
    "code commit",
    "date",
)
SHORT = 12  # characters of a hash shown in the tables (the JSON keeps them whole)


@dataclass(frozen=True)
class LeaderboardRow:
    """One row: an experiment's checkpoint version (``kind`` "ours"), a zero-shot experiment's endpoint
    ("zero-shot") or a published system ("published")."""

    kind: str
    experiment: str
    version: str
    variant: str
    frames: int | None
    finetuning: str
    headline: dict[str, float | None]  # benchmark → headline metric x100
    train_shards: str | None
    train_scenes: int | None
    recipe_hash: str | None
    base_model: str | None  # fingerprint; for a zero-shot row "model @ base URL"
    code_commit: str | None
    date: str | None

    def cells(self) -> list[str]:
        def short(value: str | None) -> str:
            return "–" if not value else value[:SHORT]

        scores = ["–" if self.headline.get(t) is None else f"{self.headline[t]:.1f}" for t in HEADLINE]
        return [
            self.experiment,
            self.version,
            self.variant,
            "–" if self.frames is None else str(self.frames),
            self.finetuning,
            *scores,
            short(self.train_shards),
            "–" if self.train_scenes is None else str(self.train_scenes),
            short(self.recipe_hash),
            (self.base_model or "–") if self.kind == "zero-shot" else short(self.base_model),
            short(self.code_commit),
            self.date or "–",
        ]


@dataclass(frozen=True)
class Leaderboard:
    rows: list[LeaderboardRow]

    @property
    def data_version(self) -> str:
        return content_hash([asdict(row) for row in self.rows])

    def markdown(self) -> str:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(row.cells()) + " |" for row in self.rows]
        return "\n".join(lines)

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["kind", *COLUMNS])
        for row in self.rows:
            writer.writerow([row.kind, *row.cells()])
        return out.getvalue()

    def as_json(self) -> dict[str, Any]:
        return {"headline": HEADLINE, "rows": [asdict(row) for row in self.rows]}


def experiment_row(layout: StorageLayout, experiment: Mapping[str, Any]) -> LeaderboardRow | None:
    """The row of an experiment (its ``Experiment.summary()``) from its scores and the lineage of the version
    scored; None when it has no scores."""
    scored = read_experiment_scores(layout, experiment["name"])
    if scored is None:
        return None
    if "endpoint" in experiment:
        return _zero_shot_row(layout, experiment, scored.run.checkpoint, scored.headline)
    lineage_file = layout.models.checkpoint(experiment["name"], scored.run.checkpoint) / LINEAGE_FILE
    lineage = json.loads(lineage_file.read_text()) if lineage_file.is_file() else {}
    shards = lineage.get("shards") or {}
    return LeaderboardRow(
        kind="ours",
        experiment=experiment["name"],
        version=scored.run.checkpoint + ("" if lineage else " (pruned)"),
        variant=experiment["data_variant"],
        frames=experiment["num_frames"],
        finetuning=experiment["finetuning_type"],
        headline={task: round(100 * value, 2) for task, value in scored.headline.items()},
        train_shards=shards.get("data_version"),
        train_scenes=len(lineage["train_scenes"]) if "train_scenes" in lineage else None,
        recipe_hash=lineage.get("recipe", {}).get("hash"),
        base_model=lineage.get("base_model", {}).get("fingerprint"),
        code_commit=lineage.get("code_commit"),
        date=lineage.get("created"),
    )


def _zero_shot_row(
    layout: StorageLayout, experiment: Mapping[str, Any], version: str, headline: Mapping[str, float]
) -> LeaderboardRow:
    run_file = layout.evaluation.run_record(experiment["name"])
    run = json.loads(run_file.read_text()) if run_file.is_file() else {}
    endpoint = run.get("endpoint") or {}
    return LeaderboardRow(
        kind="zero-shot",
        experiment=experiment["name"],
        version=version,
        variant=experiment["data_variant"],
        frames=experiment["num_frames"],
        finetuning=experiment["finetuning_type"],
        headline={task: round(100 * value, 2) for task, value in headline.items()},
        train_shards=None,
        train_scenes=None,
        recipe_hash=None,
        base_model=f"{endpoint['model']} @ {endpoint['base_url']}" if endpoint else None,
        code_commit=run.get("code_commit"),
        date=run.get("created"),
    )


def published_rows() -> list[LeaderboardRow]:
    return [
        LeaderboardRow(
            "published",
            f"{p.name} ({p.source})",
            "published",
            "–",
            None,
            p.setting or "–",
            p.headline,
            None,
            None,
            None,
            None,
            None,
            None,
        )
        for p in PUBLISHED_ROWS
    ]


def build_leaderboard(layout: StorageLayout, experiments: Iterable[Mapping[str, Any]]) -> Leaderboard:
    """The leaderboard of ``experiments`` (their summaries) and the published rows, written as
    ``evaluation/leaderboard.{md,csv,json}``."""
    ours = [row for row in (experiment_row(layout, e) for e in experiments) if row is not None]
    board = Leaderboard([*ours, *published_rows()])
    evaluation = layout.evaluation
    write_text(evaluation.leaderboard("md"), board.markdown() + "\n")
    write_text(evaluation.leaderboard("csv"), board.csv())
    write_json(evaluation.leaderboard("json"), board.as_json())
    return board
