"""Training recipes: flat, sectioned YAML in LLaMA-Factory's style, plus the DeepSpeed JSON they name.

A recipe is one flat mapping; ``### model`` / ``### method`` / ``### dataset`` / ``### output`` / ``### train``
are comments that group the keys, as in LLaMA-Factory's ``examples/``. The keys are LLaMA-Factory's (so a recipe
reads like the one GPT4Scene released) plus ``global_batch_size``, which fixes the gradient accumulation from the
number of processes at launch (GPT4Scene's script does the same with ``full_batch_size``). Unknown keys are refused,
so a typo never trains with a silent default.

``deepspeed`` is a path relative to the recipe file. The recipe hash — the checkpoint asset's code version — is
the sha256 of the canonical JSON of the parsed recipe and the parsed DeepSpeed config: a comment or a key order
change keeps it, any value change in either file changes it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from ops.core.fingerprint import content_hash

FINETUNING_TYPES = ("lora", "full")
# Keys LLaMA-Factory needs that this trainer reads only to check them (the values it supports).
FIXED_KEYS = {"stage": "sft", "do_train": True, "template": "qwen2_vl"}
# LLaMA-Factory keys that have no effect here (the pipeline decides where outputs go and always plots the loss).
IGNORED_KEYS = (
    "trust_remote_code",
    "overwrite_output_dir",
    "plot_loss",
    "ddp_timeout",
    "preprocessing_num_workers",
    "overwrite_cache",
    "report_to",
    "dataset",
    "output_dir",
)
# The keys an experiment file adds to its recipe (read by ops.model.experiments); the trainer does not need them.
EXPERIMENT_KEYS = ("description", "data_variant", "num_frames", "train")


@dataclass(frozen=True)
class Recipe:
    """One fine-tuning recipe. Field names are LLaMA-Factory's recipe keys."""

    # ### model
    model_name_or_path: str = ""  # documentation of the intended base; the pipeline passes the base model folder
    image_resolution: int = 512  # long side cap of every image, px (LLaMA-Factory 0.9.1's key)
    flash_attn: str = "auto"  # auto | fa2 | sdpa | eager; fa2 is used only on GPU
    # ### method
    finetuning_type: str = "lora"
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target: str = "all"  # "all" = every linear layer of the language model, or comma-separated names
    additional_target: str = ""  # comma-separated modules trained in full beside LoRA (e.g. "merger")
    freeze_vision_tower: bool = True  # freezes every parameter named "visual" (vision tower and merger)
    deepspeed: str = ""  # DeepSpeed JSON, relative to the recipe file; empty = plain DDP
    # ### dataset
    cutoff_len: int = 32768
    max_samples: int = 0  # 0 = every row of the shards
    dataloader_num_workers: int = 0
    # ### output
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int = 1
    # ### train
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    global_batch_size: int = 0  # > 0: gradient accumulation = global / (per-device batch * processes)
    learning_rate: float = 1e-4
    num_train_epochs: float = 1.0
    max_steps: int = -1
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    bf16: bool = True  # on GPU; CPU always trains in fp32
    gradient_checkpointing: bool = True
    seed: int = 42

    def gradient_accumulation(self, world_size: int) -> int:
        """Gradient accumulation steps for ``world_size`` processes (``global_batch_size`` wins when set)."""
        if self.global_batch_size <= 0:
            return self.gradient_accumulation_steps
        per_step = self.per_device_train_batch_size * world_size
        if self.global_batch_size % per_step:
            raise ValueError(
                f"global_batch_size {self.global_batch_size} is not a multiple of per-device batch "
                f"{self.per_device_train_batch_size} x {world_size} processes"
            )
        return self.global_batch_size // per_step


@dataclass(frozen=True)
class LoadedRecipe:
    """A recipe with where it came from, its DeepSpeed config (parsed) and its hash."""

    path: Path
    recipe: Recipe
    deepspeed_path: Path | None
    deepspeed_config: dict[str, Any] | None
    hash: str

    def summary(self) -> dict[str, Any]:
        """JSON-ready record of the recipe for lineage."""
        return {
            "path": str(self.path),
            "hash": self.hash,
            "values": asdict(self.recipe),
            "deepspeed": str(self.deepspeed_path) if self.deepspeed_path else None,
            "deepspeed_config": self.deepspeed_config,
        }


def _check_types(path: Path, values: dict[str, Any]) -> dict[str, Any]:
    defaults = {f.name: f.default for f in fields(Recipe)}
    checked = {}
    for key, value in values.items():
        expected = type(defaults[key])
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is float and isinstance(value, str):  # YAML 1.1 reads 5e-6 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ValueError(f"{path}: {key} must be {expected.__name__}, got {value!r}")
        checked[key] = value
    return checked


def read_recipe_mapping(path: Path) -> dict[str, Any]:
    """The flat YAML mapping of a recipe file (errors name the file)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read recipe: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a recipe is a flat YAML mapping")
    return raw


def load_recipe(path: str | Path) -> LoadedRecipe:
    """Parse and validate a recipe YAML and the DeepSpeed JSON it names; errors name the file and the key."""
    path = Path(path).resolve()
    return recipe_from_mapping(path, read_recipe_mapping(path))


def recipe_from_mapping(path: Path, raw: dict[str, Any]) -> LoadedRecipe:
    """Validate the recipe keys of ``raw`` (read from ``path``, which relative DeepSpeed paths start from)."""
    known = {f.name for f in fields(Recipe)}
    unknown = sorted(set(raw) - known - set(FIXED_KEYS) - set(IGNORED_KEYS) - set(EXPERIMENT_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown recipe keys {unknown}")
    for key, supported in FIXED_KEYS.items():
        if key in raw and raw[key] != supported:
            raise ValueError(f"{path}: {key} must be {supported!r} (got {raw[key]!r})")
    recipe = Recipe(**_check_types(path, {k: v for k, v in raw.items() if k in known}))
    if recipe.finetuning_type not in FINETUNING_TYPES:
        raise ValueError(f"{path}: finetuning_type must be one of {FINETUNING_TYPES}, got {recipe.finetuning_type!r}")
    if recipe.flash_attn not in ("auto", "fa2", "sdpa", "eager"):
        raise ValueError(f"{path}: flash_attn must be auto, fa2, sdpa or eager, got {recipe.flash_attn!r}")
    if recipe.max_steps <= 0 and recipe.num_train_epochs <= 0:
        raise ValueError(f"{path}: set max_steps or num_train_epochs")
    ds_path, ds_config = None, None
    if recipe.deepspeed:
        ds_path = (path.parent / recipe.deepspeed).resolve()
        try:
            ds_config = json.loads(ds_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: deepspeed config {ds_path}: {exc}") from exc
    content = {"recipe": asdict(recipe), "deepspeed": ds_config}
    digest = content_hash(content)
    return LoadedRecipe(path, recipe, ds_path, ds_config, digest)
