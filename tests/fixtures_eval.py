"""A small storage root with prepared synthetic scenes, samples, training shards and the three eval-set variants,
built through the same ops the dataset assets call (``ops.dataset.build.build_dataset``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ops.core.layout import StorageLayout
from ops.dataset.build import SampleSettings, ShardSettings, build_dataset
from ops.dataset.samples import VARIANTS
from ops.prompts.driver import PromptSettings, prepare_scene
from ops.synthetic import generate_dataset


@dataclass(frozen=True)
class EvalData:
    """``root`` (storage root), ``raw`` (raw root), ``eval_dirs`` variant → eval shard set."""

    root: Path
    raw: Path
    eval_dirs: dict[str, Path]


def build_eval_data(base: Path) -> EvalData:
    """Two synthetic scenes (one train, one val), 8 small frames each, every variant."""
    raw, root = base / "raw", base / "root"
    truth = generate_dataset(raw, n_scenes=2, seed=3, n_frames=30, color_size=(320, 240), depth_size=(160, 120))
    for scene_id in truth.train_ids + truth.val_ids:
        prepare_scene(
            raw / "scans" / scene_id,
            root / "scenes" / scene_id,
            PromptSettings(n_frames=8, bev_long_side=256, image_resolution=160),
        )
    build_dataset(
        root, raw / "scans", raw / "annotations", root / "dataset", SampleSettings(variants=VARIANTS), ShardSettings()
    )
    return EvalData(root, raw, {v: StorageLayout(root).dataset.eval_set(v) for v in VARIANTS})
