"""Does a published checkpoint work: its files are there, it loads on its base model and one forward pass over the
first training row gives a finite loss."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ops.model.training.checkpoint import LINEAGE_FILE, LOSS_CURVE_FILE, weights_kind
from ops.model.training.data import ShardDataset, row_encoder, training_collator
from ops.model.training.publish import read_lineage
from ops.model.training.recipe import Recipe
from ops.model.training.trainer import answer_token_loss
from ops.model.vlm import load_vlm


@dataclass(frozen=True)
class CheckpointProbe:
    """What ``probe_checkpoint`` found: ``error`` when there are no weights to load, else the weights kind
    (``lora`` or ``full``), the files missing beside them and the loss on the first training row."""

    error: str | None = None
    weights: str | None = None
    missing: list[str] = field(default_factory=list)
    loss: float = math.nan

    @property
    def passed(self) -> bool:
        return self.error is None and not self.missing and math.isfinite(self.loss)


def probe_checkpoint(checkpoint_dir: Path, recipe: Recipe, image_root: Path) -> CheckpointProbe:
    """Load the checkpoint (an adapter on the base model its lineage names, or full weights) and compute the
    answer-token loss of the first row of the shards it was trained on, encoded as ``recipe`` encodes rows."""
    missing = [n for n in (LINEAGE_FILE, LOSS_CURVE_FILE) if not (checkpoint_dir / n).is_file()]
    try:
        kind = weights_kind(checkpoint_dir)
    except FileNotFoundError as exc:
        return CheckpointProbe(error=str(exc))
    import torch

    lineage = read_lineage(checkpoint_dir)
    if kind == "lora":
        vlm = load_vlm(lineage["base_model"]["path"], adapter_dir=checkpoint_dir)
    else:
        vlm = load_vlm(checkpoint_dir)
    encode = row_encoder(vlm, recipe.image_resolution, recipe.cutoff_len)
    dataset = ShardDataset(lineage["shards"]["path"], encode, image_root=image_root)
    batch = training_collator(vlm.tokenizer.pad_token_id)([dataset[0]])
    labels = batch.pop("labels")
    with torch.inference_mode():
        loss = float(answer_token_loss(vlm.model(**batch), labels))
    return CheckpointProbe(weights=kind, missing=missing, loss=loss)
