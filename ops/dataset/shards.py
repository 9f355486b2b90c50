"""Training shards: samples → Parquet files LLaMA-Factory trains on directly, a manifest, and a ShareGPT export.

One shard set (one split of one variant) is one folder, written whole through ``staging_dir`` (a crash leaves the
previous version or nothing; stale shards of an earlier build never survive):

    <out_dir>/data/<split>-00000-of-00003.parquet   Parquet only: LLaMA-Factory loads every file of the folder
    <out_dir>/dataset_info.json                      {name: sharegpt entry with "file_name": "data"}
    <out_dir>/<extra files>                          optional (e.g. an eval set's ``scan2cap_corpus.json``)
    <out_dir>/manifest.json                          written last: per-file sha256/rows/bytes and the data version

Columns: ``messages`` (list of {role, content}: the user turn with one ``<image>`` per image, then the assistant),
``images`` (list of the image files' bytes, or with ``image_mode="paths"`` their paths relative to the storage
root, for LLaMA-Factory's ``image_dir``/``media_dir`` set to that root), ``task``, ``scene_id``, ``sample_id`` and,
when any sample has evaluation fields, ``eval`` (JSON text, null for none).

Row order is the samples sorted by ``sample_id`` then permuted by ``numpy.random.default_rng(seed)``; rows fill
shards in that order up to ``target_shard_bytes`` (estimated from image file sizes and text lengths). Parquet writer
options are pinned (zstd level 3, fixed row-group size, no pandas metadata); pyarrow stores no timestamp, only its
version in ``created_by``, so the same samples, images and pyarrow version give byte-identical files. The data
version is the sha256 of the canonical JSON of the sorted entries of the Parquet files, the extra files and (paths
mode, where the Parquet files hold no pixels) every referenced image, so a changed image changes it in both modes.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ops.core.atomic import staging_dir, write_bytes, write_json, write_text
from ops.core.errors import SceneInputError
from ops.core.fingerprint import file_sha256, sha256_hex
from ops.core.layout import MANIFEST
from ops.dataset.annotations import IMAGE_PLACEHOLDER, find_special_tokens
from ops.dataset.manifest import FileEntry, ShardManifest, data_version, read_manifest
from ops.dataset.samples import Sample

ImageMode = Literal["bytes", "paths"]
IMAGE_MODES = get_args(ImageMode)
DATA_DIR = "data"
DATASET_INFO = "dataset_info.json"
DEFAULT_SHARD_BYTES = 512 * 2**20
ROW_GROUP_ROWS = 32  # rows hold ~N images each; small row groups keep streaming readers' memory low
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
    "store_schema": True,
}
SHAREGPT_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


def ordered_samples(samples: Iterable[Sample], seed: int) -> list[Sample]:
    """Samples sorted by ``sample_id`` and then permuted by a seeded RNG (independent of the input order)."""
    by_id = sorted(samples, key=lambda s: s.sample_id)
    return [by_id[i] for i in np.random.default_rng(seed).permutation(len(by_id))]


def llamafactory_dataset_info(name: str, file_name: str = DATA_DIR) -> dict[str, Any]:
    """The ``dataset_info.json`` entry for the shards (LLaMA-Factory ``data/README.md``, sharegpt/OpenAI style)."""
    return {
        name: {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": dict(SHAREGPT_TAGS),
        }
    }


def sharegpt_dataset_info(name: str, file_name: str) -> dict[str, Any]:
    """The ``dataset_info.json`` entry for a ShareGPT JSON export (``conversations`` with ``from``/``value``)."""
    return {
        name: {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "images": "images"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
        }
    }


def _schema(image_mode: str, with_eval: bool) -> pa.Schema:
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    fields = [
        ("messages", pa.list_(message)),
        ("images", pa.list_(pa.binary() if image_mode == "bytes" else pa.string())),
        ("task", pa.string()),
        ("scene_id", pa.string()),
        ("sample_id", pa.string()),
    ]
    if with_eval:
        fields.append(("eval", pa.string()))
    return pa.schema(fields)


def _eval_json(sample: Sample) -> str | None:
    return None if sample.eval is None else json.dumps(sample.eval, sort_keys=True, ensure_ascii=False)


class _Images:
    """Reads images under the storage root, naming the scene and file on failure; caches within one shard."""

    def __init__(self, root: Path):
        self.root = root
        self.sizes: dict[str, int] = {}
        self.cache: dict[str, bytes] = {}

    def path(self, sample: Sample, rel: str) -> Path:
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise SceneInputError(sample.scene_id, rel, "image path must be relative to the storage root")
        return self.root / rel

    def size(self, sample: Sample, rel: str) -> int:
        if rel not in self.sizes:
            try:
                self.sizes[rel] = self.path(sample, rel).stat().st_size
            except OSError as exc:
                raise SceneInputError(sample.scene_id, self.root / rel, f"cannot read image: {exc.strerror}") from exc
        return self.sizes[rel]

    def read(self, sample: Sample, rel: str) -> bytes:
        if rel not in self.cache:
            try:
                self.cache[rel] = self.path(sample, rel).read_bytes()
            except OSError as exc:
                raise SceneInputError(sample.scene_id, self.root / rel, f"cannot read image: {exc.strerror}") from exc
        return self.cache[rel]


def _row_bytes(sample: Sample, images: _Images, image_mode: str) -> int:
    """Estimated stored bytes of one row; fails on a missing image in either mode."""
    text = len(sample.user_text) + len(sample.answer) + len(sample.sample_id) + len(_eval_json(sample) or "")
    sizes = [images.size(sample, p) for p in sample.images]
    return text + (sum(sizes) if image_mode == "bytes" else sum(len(p) for p in sample.images))


def _partition(sizes: Sequence[int], target: int) -> list[range]:
    """Consecutive row ranges, each closed once adding the next row would pass ``target`` bytes."""
    ranges, start, total = [], 0, 0
    for index, size in enumerate(sizes):
        if index > start and total + size > target:
            ranges.append(range(start, index))
            start, total = index, 0
        total += size
    ranges.append(range(start, len(sizes)))
    return ranges


def write_shards(
    samples: Iterable[Sample],
    out_dir: str | Path,
    root: str | Path,
    split: str,
    dataset_name: str,
    image_mode: str = "bytes",
    target_shard_bytes: int = DEFAULT_SHARD_BYTES,
    seed: int = 0,
    metadata: Mapping[str, Any] | None = None,
    extra_files: Mapping[str, bytes] | None = None,
) -> ShardManifest:
    """Write the shard set of ``samples`` into ``out_dir`` (replacing it) and return the manifest.

    ``root`` is the storage root the samples' image paths are relative to. ``metadata`` (JSON-ready, e.g. build
    settings and stats) is copied into the manifest; it does not enter the data version. ``extra_files`` (plain
    file name → content) are written beside ``dataset_info.json`` and do enter it.
    """
    if image_mode not in IMAGE_MODES:
        raise ValueError(f"image_mode must be one of {IMAGE_MODES}, got {image_mode!r}")
    if target_shard_bytes < 1:
        raise ValueError(f"target_shard_bytes must be >= 1, got {target_shard_bytes}")
    if not split or Path(split).name != split or split.startswith("."):
        raise ValueError(f"split must be a plain name, got {split!r}")
    extra_files = dict(sorted((extra_files or {}).items()))
    reserved = {DATA_DIR, MANIFEST, DATASET_INFO}
    for name in extra_files:
        if not name or Path(name).name != name or name.startswith(".") or name in reserved:
            raise ValueError(f"extra file names must be plain and not {sorted(reserved)}, got {name!r}")
    rows = ordered_samples(samples, seed)
    if not rows:
        raise ValueError("no samples to write")
    repeated = sorted(sid for sid, n in Counter(s.sample_id for s in rows).items() if n > 1)
    if repeated:
        raise ValueError(f"duplicate sample ids: {repeated[:10]}")
    images = _Images(Path(root))
    ranges = _partition([_row_bytes(s, images, image_mode) for s in rows], target_shard_bytes)
    with_eval = any(s.eval is not None for s in rows)
    schema = _schema(image_mode, with_eval)

    files = []
    with staging_dir(out_dir) as tmp:
        (tmp / DATA_DIR).mkdir()
        for number, index_range in enumerate(ranges):
            shard = [rows[i] for i in index_range]
            images.cache.clear()
            columns: dict[str, list[Any]] = {
                "messages": [s.messages() for s in shard],
                "images": [
                    [images.read(s, p) for p in s.images] if image_mode == "bytes" else list(s.images) for s in shard
                ],
                "task": [s.task for s in shard],
                "scene_id": [s.scene_id for s in shard],
                "sample_id": [s.sample_id for s in shard],
            }
            if with_eval:
                columns["eval"] = [_eval_json(s) for s in shard]
            rel = f"{DATA_DIR}/{split}-{number:05d}-of-{len(ranges):05d}.parquet"
            pq.write_table(
                pa.Table.from_pydict(columns, schema=schema),
                tmp / rel,
                row_group_size=ROW_GROUP_ROWS,
                **PARQUET_OPTIONS,
            )
            files.append(FileEntry(rel, file_sha256(tmp / rel), len(shard), (tmp / rel).stat().st_size))
        images.cache.clear()
        write_json(tmp / DATASET_INFO, llamafactory_dataset_info(dataset_name))
        extras = []
        for name, content in extra_files.items():
            write_bytes(tmp / name, content)
            extras.append(FileEntry(name, sha256_hex(content), bytes=len(content)))
        # Paths mode: the Parquet files hold no pixels, so the images' own hashes enter the data version.
        referenced = sorted({p: s for s in rows for p in s.images}.items()) if image_mode == "paths" else []
        image_entries = [FileEntry(p, file_sha256(images.path(s, p))) for p, s in referenced]
        manifest = ShardManifest(
            dataset_name,
            split,
            image_mode,
            seed,
            len(rows),
            dict(sorted(Counter(s.task for s in rows).items())),
            tuple(files),
            tuple(extras),
            tuple(image_entries),
            data_version([*files, *extras, *image_entries]),
            dict(metadata or {}),
        )
        write_json(tmp / MANIFEST, manifest.to_dict())
    return manifest


def verify_shards(out_dir: str | Path, root: str | Path | None = None) -> list[str]:
    """Problems of a shard set (empty when sound): files missing, extra, or whose sha256/rows differ from the
    manifest, and a data version that does not match the entries. With ``root`` (the storage root), the images a
    paths-mode set references are checked against their recorded sha256 too."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    listed = {f.path for f in manifest.files}
    data_dir = out_dir / DATA_DIR
    present = {f"{DATA_DIR}/{p.name}" for p in data_dir.iterdir()} if data_dir.is_dir() else set()
    problems = [f"{p}: not in the manifest" for p in sorted(present - listed)]
    for entry in manifest.files:
        path = out_dir / entry.path
        found = _file_problems(entry, path, entry.path)
        if not found and pq.ParquetFile(path).metadata.num_rows != entry.rows:
            found.append(f"{entry.path}: row count differs from the manifest")
        problems += found
    for entry in manifest.extra_files:
        problems += _file_problems(entry, out_dir / entry.path, entry.path)
    for entry in manifest.images if root is not None else ():
        problems += _file_problems(entry, Path(root) / entry.path, f"image {entry.path}")
    if data_version(manifest.versioned_entries) != manifest.data_version:
        problems.append("data_version does not match the file entries")
    return problems


def _file_problems(entry: FileEntry, path: Path, label: str) -> list[str]:
    """``<label>: missing`` or ``<label>: sha256 differs from the manifest``, or nothing."""
    if not path.is_file():
        return [f"{label}: missing"]
    if file_sha256(path) != entry.sha256:
        return [f"{label}: sha256 differs from the manifest"]
    return []


def placeholder_mismatches(out_dir: str | Path, limit: int = 20) -> tuple[int, list[str]]:
    """(rows read, up to ``limit`` problems of rows whose tokens do not fit the chat): the user turn's ``<image>``
    count differs from the image count, another turn holds ``<image>``, or any turn holds one of the model's special
    tokens (each counted); reads only the ``messages``, ``images`` and ``sample_id`` columns, one row group at a
    time."""
    rows, bad = 0, []
    for row in iter_rows(out_dir, columns=("sample_id", "messages", "images")):
        rows += 1
        if len(bad) < limit:
            bad += [f"{row['sample_id']}: {problem}" for problem in _token_problems(row)][: limit - len(bad)]
    return rows, bad


def _token_problems(row: dict[str, Any]) -> list[str]:
    placeholders = sum(m["content"].count(IMAGE_PLACEHOLDER) for m in row["messages"] if m["role"] == "user")
    problems = []
    if placeholders != len(row["images"]):
        problems.append(f"{placeholders} placeholders for {len(row['images'])} images")
    for message in row["messages"]:
        text, role = message["content"], message["role"]
        if role != "user" and IMAGE_PLACEHOLDER in text:
            problems.append(f"the {role} turn holds {text.count(IMAGE_PLACEHOLDER)} {IMAGE_PLACEHOLDER}")
        problems += [f"the {role} turn holds {text.count(t)} {t}" for t in find_special_tokens(text)]
    return problems


def iter_rows(out_dir: str | Path, columns: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    """The rows of a shard set in manifest (training) order as dicts, one row group in memory at a time.

    ``images`` are bytes (bytes mode) or paths relative to the storage root; ``eval`` (eval sets) is parsed JSON.
    """
    for path in shard_files(out_dir):
        parquet = pq.ParquetFile(path)
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group, columns=list(columns) if columns else None)
            for index in range(table.num_rows):  # to Python one row at a time: a reader that stops early pays less
                (row,) = table.slice(index, 1).to_pylist()
                if row.get("eval") is not None:
                    row["eval"] = json.loads(row["eval"])
                yield row


def export_sharegpt(samples: Iterable[Sample], path: str | Path, seed: int = 0, image_prefix: str = "") -> int:
    """Write the samples as the official GPT4Scene ShareGPT JSON (``conversations`` with ``from``/``value``,
    ``human``/``gpt``; ``images`` = ``image_prefix`` + relative path), in shard row order; returns the row count."""
    rows = [
        {
            "conversations": [{"from": "human", "value": s.user_text}, {"from": "gpt", "value": s.answer}],
            "images": [image_prefix + p for p in s.images],
        }
        for s in ordered_samples(samples, seed)
    ]
    write_text(path, json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
    return len(rows)


def shard_files(out_dir: str | Path) -> list[str]:
    """Absolute paths of the shard set's Parquet files, in manifest order (e.g. for ``datasets.load_dataset``)."""
    out_dir = Path(out_dir)
    return [os.fspath(out_dir / f.path) for f in read_manifest(out_dir).files]
