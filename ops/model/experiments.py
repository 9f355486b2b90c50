"""Experiments: one recipe file each under ``recipes/experiments/``, the partitions of training and evaluation.

An experiment file is a training recipe (``ops.model.training.recipe``: base model, fine-tuning type,
hyperparameters, DeepSpeed config) plus the ``### experiment`` keys:

    description      one line for the leaderboard and the UI
    data_variant     the training and eval data it uses: marked (BEV + marked frames), no_bev or unmarked
    num_frames       frames per scene it is meant for (recorded; the frames are the scenes' visual prompts)
    train            false for the untrained base model: its "checkpoint" is the base model itself
    endpoint         (zero-shot experiments only) an OpenAI-compatible endpoint answering instead of a checkpoint

Three kinds follow: ``trained`` (the default), ``base`` (``train: false``) and ``zero_shot`` (an ``endpoint``
mapping; nothing is trained, so ``train`` may be omitted but not true). The endpoint mapping (``Endpoint``) names
the base URL, the model, the NAME of the environment variable holding the API key (never the key), the number of
requests in flight, retries with their first backoff, and the request timeout; ``base_url_env`` names a variable
that, when set and non-empty, replaces ``base_url`` (tests point it at their own server).

The file name (without ``.yaml``) is the experiment's name and partition key. Its hash covers the recipe hash and
the experiment keys, so any value change is a new experiment version in the lineage.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ops.core.fingerprint import content_hash
from ops.dataset.samples import VARIANTS
from ops.model.training.recipe import LoadedRecipe, read_recipe_mapping, recipe_from_mapping

EXPERIMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Endpoint:
    """The OpenAI-compatible endpoint a zero-shot experiment answers through. ``api_key_env`` is the NAME of the
    environment variable holding the key; the key itself is read only when a request is sent (``api_key``)."""

    base_url: str
    model: str
    api_key_env: str = ""  # empty: no key sent (a local `gpt4scene serve` needs none)
    base_url_env: str = ""  # set and non-empty in the environment: replaces base_url
    concurrency: int = 4  # requests in flight at most
    retries: int = 3  # further attempts of a request after a connection error, HTTP 429 or 5xx
    backoff_s: float = 1.0  # wait before the first retry, doubled before each next one
    timeout_s: float = 120.0  # per request

    def url(self, environ: Mapping[str, str] = os.environ) -> str:
        """The base URL requests go to: ``$base_url_env`` when set and non-empty, else ``base_url``."""
        return (environ.get(self.base_url_env, "") if self.base_url_env else "") or self.base_url

    def api_key(self, environ: Mapping[str, str] = os.environ) -> str:
        """The API key from ``$api_key_env`` (empty when unnamed or unset)."""
        return environ.get(self.api_key_env, "") if self.api_key_env else ""


def _endpoint(path: Path, raw: Any) -> Endpoint:
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: endpoint must be a mapping (base_url, model, api_key_env, ...)")
    known = {f.name: f for f in fields(Endpoint)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"{path}: unknown endpoint keys {unknown}")
    for key in ("base_url", "model"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ValueError(f"{path}: endpoint.{key} must be a non-empty string")
    if not re.match(r"^https?://", raw["base_url"]):
        raise ValueError(f"{path}: endpoint.base_url must start with http:// or https://, got {raw['base_url']!r}")
    for key in ("api_key_env", "base_url_env"):
        value = raw.get(key, "")
        if not isinstance(value, str) or (value and not ENV_NAME.match(value)):
            # The value is not repeated: a key pasted where its variable's name belongs stays out of the error.
            raise ValueError(
                f"{path}: endpoint.{key} must be the NAME of an environment variable ([A-Za-z_][A-Za-z0-9_]*)"
            )
    for key, low in (("concurrency", 1), ("retries", 0)):
        value = raw.get(key, known[key].default)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{path}: endpoint.{key} must be an int >= {low}, got {value!r}")
    checked = dict(raw)
    for key, positive in (("backoff_s", False), ("timeout_s", True)):
        value = raw.get(key, known[key].default)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or value < 0 or (positive and value == 0):
            raise ValueError(f"{path}: endpoint.{key} must be a number of seconds, got {value!r}")
        checked[key] = float(value)
    return Endpoint(**checked)


_UNTRAINED = {"base": "none", "zero_shot": "zero-shot"}


@dataclass(frozen=True)
class Experiment:
    """One experiment: its name, file, data variant, frame count, whether it trains, its recipe, and the endpoint
    of a zero-shot experiment (None otherwise)."""

    name: str
    path: Path
    description: str
    data_variant: str
    num_frames: int
    trains: bool
    recipe: LoadedRecipe
    endpoint: Endpoint | None = None

    @property
    def kind(self) -> str:
        """``zero_shot`` (answered through an endpoint), ``base`` (the untrained base model) or ``trained``."""
        return "zero_shot" if self.endpoint is not None else "trained" if self.trains else "base"

    @property
    def hash(self) -> str:
        """The recipe hash and the experiment keys: what decides the experiment's checkpoint besides its data."""
        return content_hash({"recipe": self.recipe.hash, **self.keys()})

    def keys(self) -> dict[str, Any]:
        keys = {"data_variant": self.data_variant, "num_frames": self.num_frames, "train": self.trains}
        return keys if self.endpoint is None else {**keys, "endpoint": asdict(self.endpoint)}

    def summary(self) -> dict[str, Any]:
        """JSON-ready record for lineage and the leaderboard."""
        return {
            "name": self.name,
            "path": str(self.path),
            "description": self.description,
            "hash": self.hash,
            "recipe_hash": self.recipe.hash,
            "finetuning_type": self.recipe.recipe.finetuning_type if self.trains else _UNTRAINED[self.kind],
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
    endpoint = _endpoint(path, raw.pop("endpoint")) if "endpoint" in raw else None
    trains = raw.pop("train", endpoint is None)
    if variant not in VARIANTS:
        raise ValueError(f"{path}: data_variant must be one of {VARIANTS}, got {variant!r}")
    if not isinstance(frames, int) or isinstance(frames, bool) or frames <= 0:
        raise ValueError(f"{path}: num_frames must be a positive int, got {frames!r}")
    if not isinstance(trains, bool):
        raise ValueError(f"{path}: train must be true or false, got {trains!r}")
    if endpoint is not None and trains:
        raise ValueError(f"{path}: a zero-shot experiment (with an endpoint) trains nothing: drop train: true")
    recipe = recipe_from_mapping(path, raw)
    return Experiment(name, path, str(description), variant, frames, trains, recipe, endpoint)


def load_experiments(folder: str | Path) -> dict[str, Experiment]:
    """Every ``*.yaml`` of ``folder``, by name (sorted)."""
    return {e.name: e for e in (load_experiment(p) for p in sorted(Path(folder).glob("*.yaml")))}
