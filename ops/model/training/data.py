"""Training rows streamed from the Parquet shards, encoded for the model one row at a time.

``ShardDataset`` is a map-style dataset over the rows of a shard set in manifest order. Its index is built from
the Parquet footers only (rows per row group); ``__getitem__`` reads the one row group holding the row (its
``messages`` and ``images`` columns) and keeps only that group in memory, so images are decoded as batches need
them and memory stays at one row group (``ops.dataset.shards.ROW_GROUP_ROWS`` rows) whatever the dataset size. The
shards are already in a seeded random order (``ops.dataset.shards``), so the trainer reads them sequentially:
consecutive rows come from the same row group, each group is read once per epoch, and a resumed run skips batches by
index without reading them.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ops.core.errors import SceneInputError
from ops.dataset.shards import read_manifest, shard_files
from ops.model.vlm import IGNORE_INDEX, VLM, collate, encode_chat, load_image

COLUMNS = ("messages", "images", "scene_id", "sample_id")


class ShardDataset:
    """Rows of the shard set in ``shards_dir``, each passed through ``encode(row)`` when read.

    ``image_root`` resolves images stored as relative paths (``image_mode="paths"``); ``max_samples`` > 0 keeps
    the first rows only."""

    def __init__(
        self,
        shards_dir: str | Path,
        encode: Callable[[dict[str, Any]], Any],
        image_root: str | Path | None = None,
        max_samples: int = 0,
    ):
        self.shards_dir = Path(shards_dir)
        self.manifest = read_manifest(self.shards_dir)
        self.encode = encode
        self.image_root = Path(image_root) if image_root is not None else None
        if self.manifest.image_mode == "paths" and self.image_root is None:
            raise ValueError(f"{self.shards_dir}: the shards store image paths; give the storage root as image_root")
        self.files = shard_files(self.shards_dir)
        self.groups: list[tuple[int, int]] = []  # (file index, row group)
        self.starts: list[int] = []  # first row of each group
        total = 0
        for file_index, path in enumerate(self.files):
            metadata = pq.ParquetFile(path).metadata
            for group in range(metadata.num_row_groups):
                self.groups.append((file_index, group))
                self.starts.append(total)
                total += metadata.row_group(group).num_rows
        self.length = min(total, max_samples) if max_samples > 0 else total
        self._cached: tuple[int, list[dict[str, Any]]] | None = None

    def __len__(self) -> int:
        return self.length

    def read_row(self, index: int) -> dict[str, Any]:
        """Row ``index`` as stored (images as bytes, or as absolute paths in paths mode)."""
        if not 0 <= index < self.length:
            raise IndexError(f"row {index} out of range for {self.length} rows")
        group_index = bisect.bisect_right(self.starts, index) - 1
        if self._cached is None or self._cached[0] != group_index:
            file_index, group = self.groups[group_index]
            table = pq.ParquetFile(self.files[file_index]).read_row_group(group, columns=list(COLUMNS))
            self._cached = (group_index, table.to_pylist())
        row = dict(self._cached[1][index - self.starts[group_index]])
        if self.manifest.image_mode == "paths":
            row["images"] = [self.image_root / p for p in row["images"]]
        return row

    def __getitem__(self, index: int) -> Any:
        row = self.read_row(index)
        try:
            return self.encode(row)
        except (ValueError, OSError) as exc:  # a bad row (e.g. text with a special token) names its shard file and row
            file_index = self.groups[bisect.bisect_right(self.starts, index) - 1][0]
            file_start = self.starts[next(i for i, (f, _) in enumerate(self.groups) if f == file_index)]
            raise SceneInputError(
                row.get("scene_id"),
                self.files[file_index],
                f"sample {row.get('sample_id')} (row {index - file_start}): {exc}",
            ) from exc


def split_conversation(row: dict[str, Any]) -> tuple[str | None, str, str]:
    """(system or None, user text, answer) of a single-turn row; other shapes raise naming the sample."""
    roles = [m["role"] for m in row["messages"]]
    system = None
    messages = row["messages"]
    if roles and roles[0] == "system":
        system, messages, roles = messages[0]["content"], messages[1:], roles[1:]
    if roles != ["user", "assistant"]:
        raise ValueError(f"expected one user and one assistant message, got roles {roles}")
    return system, messages[0]["content"], messages[1]["content"]


def row_encoder(vlm: VLM, image_resolution: int, cutoff_len: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """``row → features`` for ``ops.model.vlm.collate``: images capped at ``image_resolution`` px, loss on the answer.

    A row longer than ``cutoff_len`` tokens is refused (truncating would cut image tokens or the answer)."""

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        system, user, answer = split_conversation(row)
        images = [load_image(source, max_side=image_resolution) for source in row["images"]]
        extra = {} if system is None else {"system": system}
        features = encode_chat(vlm, user, images, answer=answer, **extra)
        if len(features["input_ids"]) > cutoff_len:
            raise ValueError(f"{len(features['input_ids'])} tokens exceed cutoff_len {cutoff_len}")
        return features

    return encode


def training_collator(pad_token_id: int) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    """``ops.model.vlm.collate`` (right padding) plus ``logits_to_keep``: a [batch, length] mask of the positions whose
    next token is learnt, so the model projects only those hidden states onto the vocabulary (with Qwen's 151k
    tokens the full logits of a 10k-token sample would take 6 GB in fp32)."""
    import torch

    def collate_batch(features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate(features, pad_token_id, "right")
        keep = torch.zeros_like(batch["labels"], dtype=torch.bool)
        keep[:, :-1] = batch["labels"][:, 1:] != IGNORE_INDEX
        batch["logits_to_keep"] = keep
        return batch

    return collate_batch
