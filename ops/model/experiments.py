"""Experiments: one recipe file each under ``recipes/experiments/``, the partitions of training and evaluation.

An experiment file is a training recipe (``ops.model.training.recipe``: base model, fine-tuning type,
hyperparameters, DeepSpeed config) plus the ``### experiment`` keys:

    description      one line for the leaderboard and the UI
    data_variant     the training and eval data it uses: marked (BEV + marked frames), no_bev or unmarked
    num_frames       frames per scene it is meant for (recorded; the frames are the scenes' visual prompts)
    train            false for the untrained base model: its "checkpoint" is the base model itself

The file name (without ``.yaml``) is the experiment's name and partition key. Its hash covers the recipe hash and
the experiment keys, so any value change is a new experiment version in the lineage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.core.fingerprint import content_hash
from ops.dataset.samples import VARIANTS
from ops.model.training.recipe import LoadedRecipe, read_recipe_mapping, recipe_from_mapping

EXPERIMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Experiment:
    """One experiment: its name, file, data variant, frame count, whether it trains, and its recipe."""

    name: str
    path: Path
    description: str
    data_variant: str
    num_frames: int
    trains: bool
    recipe: LoadedRecipe

    @property
    def hash(self) -> str:
        """The recipe hash and the experiment keys: what decides the experiment's checkpoint besides its data."""
        return content_hash({"recipe": self.recipe.hash, **self.keys()})

    def keys(self) -> dict[str, Any]:
        return {"data_variant": self.data_variant, "num_frames": self.num_frames, "train": self.trains}

    def summary(self) -> dict[str, Any]:
        """JSON-ready record for lineage and the leaderboard."""
        return {
            "name": self.name,
            "path": str(self.path),
            "description": self.description,
            "hash": self.hash,
            "recipe_hash": self.recipe.hash,
            "finetuning_type": self.recipe.recipe.finetuning_type if self.trains else "none",
            **self.keys(),
        }


def load_experiment(path: str | Path) -> Experiment:
    """Parse an experiment file (a recipe plus the experiment keys); errors name the file and the key."""
    path = Path(path).resolve()
    name = path.name.removesuffix(".yaml")
    if not EXPERIMENT_NAME.match(name):
        raise ValueError(f"{path}: an experiment's file name must match {EXPERIMENT_NAME.pattern} (it is a partition)")
    raw = read_recipe_mapping(path)
    description = raw.pop("description", "")
    variant = raw.pop("data_variant", "marked")
    frames = raw.pop("num_frames", 8)
    trains = raw.pop("train", True)
    if variant not in VARIANTS:
        raise ValueError(f"{path}: data_variant must be one of {VARIANTS}, got {variant!r}")
    if not isinstance(frames, int) or isinstance(frames, bool) or frames <= 0:
        raise ValueError(f"{path}: num_frames must be a positive int, got {frames!r}")
    if not isinstance(trains, bool):
        raise ValueError(f"{path}: train must be true or false, got {trains!r}")
    return Experiment(name, path, str(description), variant, frames, trains, recipe_from_mapping(path, raw))


def load_experiments(folder: str | Path) -> dict[str, Experiment]:
    """Every ``*.yaml`` of ``folder``, by name (sorted)."""
    return {e.name: e for e in (load_experiment(p) for p in sorted(Path(folder).glob("*.yaml")))}
