"""A storage root with two prepared synthetic scenes (one train, one val), shared by the dataset tests.

Layout as ``StorageRoot(root=<base>/root, raw_root=<base>/raw)`` sees it: ``raw/scans/<scene>/``,
``raw/annotations/`` and ``root/scenes/<scene>/`` (GT instances, 8 marked frames of 160 px, a 256 px BEV).
Tests must not modify it: copy what they change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from ops.prompts.driver import PromptSettings, prepare_scene
from ops.synthetic import DatasetTruth, generate_dataset

PROMPT_SETTINGS = PromptSettings(n_frames=8, bev_long_side=256, image_resolution=160)


@dataclass(frozen=True)
class PreparedScenes:
    base: Path
    truth: DatasetTruth

    @property
    def raw(self) -> Path:
        return self.base / "raw"

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def annotations(self) -> Path:
        return self.raw / "annotations"

    def scan(self, scene_id: str) -> Path:
        return self.raw / "scans" / scene_id


@pytest.fixture(scope="session")
def prepared_scenes(tmp_path_factory) -> PreparedScenes:
    """Two synthetic scenes (seed 3, 30 frames of 320x240) with their visual prompts under ``root/scenes``."""
    base = tmp_path_factory.mktemp("prepared")
    truth = generate_dataset(
        base / "raw", n_scenes=2, seed=3, n_frames=30, color_size=(320, 240), depth_size=(160, 120)
    )
    prepared = PreparedScenes(base, truth)
    for scene_id in truth.train_ids + truth.val_ids:
        prepare_scene(prepared.scan(scene_id), prepared.root / "scenes" / scene_id, PROMPT_SETTINGS)
    return prepared
