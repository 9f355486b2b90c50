"""`leaderboard`: every experiment's latest scores in one table with its lineage, beside the published rows.

Unpartitioned, downstream of every `eval_scores` partition. Writes ``evaluation/leaderboard.md``, ``.csv`` and
``.json`` (``ops.model.leaderboard``) and shows the table as markdown in the UI. Columns: the headline metric of each
benchmark (x100) and the checkpoint's lineage: train-shard data version, number of train scenes, recipe hash,
base-model fingerprint, code commit and date. A zero-shot experiment is its own row (kind ``zero-shot``): no train
shards, scenes or recipe, and the endpoint's model and base URL where the base-model fingerprint would be. GPT4Scene's
published rows and its 2026 peers close the table (docs/REFERENCE.md §2.12-2.13).
"""

import dagster as dg

from assets.experiments import Experiments, default_experiments
from ops.model.leaderboard import build_leaderboard
from resources.storage import StorageRoot


def build_leaderboard_asset(experiments: Experiments) -> dg.AssetsDefinition:
    """The `leaderboard` asset over ``experiments``."""

    @dg.asset(name="leaderboard", deps=["eval_scores"], kinds={"python", "csv"}, group_name="evaluation")
    def leaderboard(storage: StorageRoot) -> dg.MaterializeResult:
        """Every experiment's latest scores with its lineage, and GPT4Scene's published rows: the paper's ablation
        table from real runs (`evaluation/leaderboard.{md,csv,json}`)."""
        board = build_leaderboard(storage.layout, [e.summary() for e in experiments.values()])
        return dg.MaterializeResult(
            metadata={
                "leaderboard": dg.MetadataValue.md(board.markdown()),
                "experiments": sum(row.kind != "published" for row in board.rows),
                "csv": dg.MetadataValue.path(str(storage.evaluation.leaderboard("csv"))),
                "json": dg.MetadataValue.path(str(storage.evaluation.leaderboard("json"))),
            },
            data_version=dg.DataVersion(board.data_version),
        )

    return leaderboard


leaderboard = build_leaderboard_asset(default_experiments())
