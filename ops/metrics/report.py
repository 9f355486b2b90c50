"""Score tables: every metric beside the paper's numbers and other runs, headline metrics, published reference rows.

Scores are fractions as the scorers return them (CIDEr raw); tables print them x100 like the papers do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ops.metrics.suite import BENCHMARKS

Scores = Mapping[str, Mapping[str, float]]

# GPT4Scene-HDM (Qwen2-VL-7B, 32 frames @512, full fine-tuning), x100: docs/REFERENCE.md §2.12.
PAPER_REFERENCE: dict[str, dict[str, float]] = {
    "scanqa": {"bleu1": 44.4, "bleu4": 15.5, "meteor": 18.9, "rouge_l": 46.5, "cider": 96.3},
    "sqa3d": {"em": 60.6, "em_refined": 63.3},
    "scanrefer": {"acc@0.25": 62.6, "acc@0.50": 57.0},
    "multi3drefer": {"f1@0.25": 64.5, "f1@0.50": 59.8},
    "scan2cap": {"cider@0.50": 86.3, "bleu4@0.50": 40.6, "bleu4@0.25": 43.1},
}
# One number per benchmark for comparisons (the asset check, the leaderboard, UI plots).
HEADLINE: dict[str, str] = {
    "scanqa": "cider",
    "sqa3d": "em",
    "scanrefer": "acc@0.25",
    "multi3drefer": "f1@0.25",
    "scan2cap": "cider@0.50",
}


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def comparison_table(runs: Mapping[str, Scores], paper: bool = True) -> str:
    """Markdown: one row per (benchmark, metric) of the first run, one column per run (x100), and the paper's
    number where it reports one."""
    names = list(runs)
    header = ["benchmark", "metric", *(["paper (HDM)"] if paper else []), *names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    first = runs[names[0]]
    for task in [t for t in BENCHMARKS if t in first]:
        for metric in first[task]:
            reference = PAPER_REFERENCE.get(task, {}).get(metric)
            cells = [task, metric, *([("–" if reference is None else f"{reference:.1f}")] if paper else [])]
            cells += [_cell(runs[name].get(task, {}).get(metric)) for name in names]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline(scores: Scores) -> dict[str, float]:
    """``{benchmark: headline metric}`` of the benchmarks present."""
    return {task: float(scores[task][metric]) for task, metric in HEADLINE.items() if metric in scores.get(task, {})}


def missing_benchmarks(scores: Scores, expected: Sequence[str] = BENCHMARKS) -> list[str]:
    """Benchmarks without their headline metric."""
    return [task for task in expected if HEADLINE[task] not in scores.get(task, {})]


@dataclass(frozen=True)
class PublishedRow:
    """A published system's headline metrics (x100, None where not reported) and where the numbers come from."""

    name: str
    setting: str
    headline: dict[str, float | None]
    source: str


def _published(scanrefer, multi3drefer, scan2cap, scanqa, sqa3d) -> dict[str, float | None]:
    values = {"scanrefer": scanrefer, "multi3drefer": multi3drefer, "scan2cap": scan2cap, "scanqa": scanqa}
    return {**values, "sqa3d": sqa3d}


# The leaderboard's reference rows: docs/REFERENCE.md §2.12 (the paper) and §2.13 (2026 peers, val).
PUBLISHED_ROWS: tuple[PublishedRow, ...] = (
    PublishedRow(
        "GPT4Scene-HDM",
        "Qwen2-VL-7B, full FT, 32 frames + BEV",
        {task: PAPER_REFERENCE[task][metric] for task, metric in HEADLINE.items()},
        "REFERENCE §2.12 (paper)",
    ),
    PublishedRow("GPT4Scene (ICLR'26)", "Qwen2.5-VL-7B", _published(65.6, 67.3, None, 105.7, 63.5), "REFERENCE §2.13"),
    PublishedRow("ViPS", "Qwen2-VL-7B, LoRA", _published(64.6, 62.0, 85.5, 107.9, 62.5), "REFERENCE §2.13"),
    PublishedRow("3DRS", "", _published(62.9, 60.4, 86.1, 104.8, 60.6), "REFERENCE §2.13"),
    PublishedRow("Video-3D LLM", "", _published(58.1, 58.0, 83.8, 102.1, 58.6), "REFERENCE §2.13"),
    PublishedRow("Chat-Scene", "", _published(55.5, 57.1, 77.1, 87.7, 54.6), "REFERENCE §2.13"),
)
