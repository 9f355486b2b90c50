"""Parquet shards: loadable by Hugging Face ``datasets``, byte-identical on rebuild, manifest and data version."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from ops.core.atomic import canonical_json
from ops.dataset.benchmarks import load_benchmarks
from ops.dataset.manifest import FileEntry
from ops.dataset.sample_builders import BuildSettings, build_samples
from ops.dataset.scene_context import load_scene_context
from ops.dataset.shards import (
    PARQUET_OPTIONS,
    export_sharegpt,
    iter_rows,
    ordered_samples,
    placeholder_mismatches,
    read_manifest,
    shard_files,
    sharegpt_dataset_info,
    verify_shards,
    write_shards,
)

TARGET_BYTES = 300_000  # a few rows of 9 small images each → several shards


@pytest.fixture(scope="module")
def built(prepared_scenes):
    """The shared storage root with two prepared synthetic scenes, and the train and val samples built from it."""
    root = prepared_scenes.root
    samples = {}
    for split in ("train", "val"):
        bench = load_benchmarks(prepared_scenes.annotations, split)
        contexts = {s: load_scene_context(root, prepared_scenes.scan(s)) for s in bench.scene_ids()}
        samples[split] = build_samples(bench, contexts, BuildSettings(split=split)).samples
    return prepared_scenes.base, root, samples


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_shards_load_with_hf_datasets(built, tmp_path, monkeypatch):
    base, root, samples = built
    out = tmp_path / "train"
    manifest = write_shards(
        samples["train"],
        out,
        root,
        "train",
        "gpt4scene_train",
        target_shard_bytes=TARGET_BYTES,
        metadata={"variant": "marked"},
    )
    n = len(manifest.files)
    assert n >= 3
    assert [f.path for f in manifest.files] == [f"data/train-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    assert sorted(p.name for p in (out / "data").iterdir()) == [Path(f.path).name for f in manifest.files]
    assert sum(f.rows for f in manifest.files) == manifest.num_rows == len(samples["train"])
    assert manifest.metadata == {"variant": "marked"} and verify_shards(out) == []
    assert read_manifest(out) == manifest and (out / "manifest.json").read_text() == canonical_json(manifest.to_dict())

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    dataset = datasets.load_dataset(
        "parquet", data_files=shard_files(out), split="train", cache_dir=str(tmp_path / "hf" / "cache")
    )
    assert len(dataset) == len(samples["train"])
    assert set(dataset.column_names) == {"messages", "images", "task", "scene_id", "sample_id"}
    by_id = {s.sample_id: s for s in samples["train"]}
    assert dataset["sample_id"] == [s.sample_id for s in ordered_samples(samples["train"], 0)]
    for row in dataset:
        sample = by_id[row["sample_id"]]
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert row["messages"][0]["content"].count("<image>") == len(row["images"]) == len(sample.images) == 9
        assert row["messages"][1]["content"] == sample.answer and row["task"] == sample.task
        assert row["images"][0] == (root / sample.images[0]).read_bytes()
    first = dataset[0]["images"][1]
    assert cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)

    info = json.loads((out / "dataset_info.json").read_text())
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    columns = {"messages": "messages", "images": "images"}
    entry = {"file_name": "data", "formatting": "sharegpt", "columns": columns, "tags": tags}
    assert info == {"gpt4scene_train": entry}


def test_val_shards_carry_eval_json_and_paths_mode(built, tmp_path):
    base, root, samples = built
    out = tmp_path / "val"
    write_shards(samples["val"], out, root, "val", "gpt4scene_val", image_mode="paths")
    table = pq.read_table(shard_files(out))
    assert table.schema.field("images").type.value_type == "string"
    by_id = {s.sample_id: s for s in samples["val"]}
    for row in table.to_pylist():
        sample = by_id[row["sample_id"]]
        assert row["images"] == list(sample.images) and all((root / p).is_file() for p in row["images"])
        assert json.loads(row["eval"]) == sample.eval
    assert len(read_manifest(out).files) == 1


def test_rebuild_is_byte_identical_and_content_changes_the_version(built, tmp_path):
    base, root, samples = built
    first = write_shards(samples["train"], tmp_path / "a", root, "train", "t", target_shard_bytes=TARGET_BYTES)
    again = write_shards(
        list(reversed(samples["train"])), tmp_path / "b", root, "train", "t", target_shard_bytes=TARGET_BYTES
    )
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert first.data_version == again.data_version
    meta = pq.ParquetFile(shard_files(tmp_path / "a")[0]).metadata
    assert set(meta.metadata) == {b"ARROW:schema"}  # no pandas metadata, nothing time-dependent
    assert meta.row_group(0).column(0).compression == PARQUET_OPTIONS["compression"].upper()

    # One byte of one scene's frame changes exactly the shards holding that scene's rows, and the data version.
    both = samples["train"] + samples["val"]
    scene_id = samples["train"][0].scene_id
    changed_root = tmp_path / "root"
    shutil.copytree(root, changed_root)
    frame = changed_root / "scenes" / scene_id / "frames" / "frame_03.jpg"
    data = bytearray(frame.read_bytes())
    data[len(data) // 2] ^= 0x01
    frame.write_bytes(bytes(data))
    before = write_shards(both, tmp_path / "one_row", root, "train", "t", target_shard_bytes=1)
    after = write_shards(both, tmp_path / "one_row_changed", changed_root, "train", "t", target_shard_bytes=1)
    assert len(before.files) == len(both) and after.data_version != before.data_version
    differing = {a.path for a, b in zip(before.files, after.files) if a.sha256 != b.sha256}
    holding = {f.path for f, s in zip(before.files, ordered_samples(both, 0)) if s.scene_id == scene_id}
    assert differing == holding and 0 < len(holding) < len(both)
    other_seed = write_shards(
        samples["train"], tmp_path / "d", root, "train", "t", target_shard_bytes=TARGET_BYTES, seed=1
    )
    assert other_seed.data_version != first.data_version
    assert sorted(pq.read_table(shard_files(tmp_path / "d"))["sample_id"].to_pylist()) == sorted(
        pq.read_table(shard_files(tmp_path / "a"))["sample_id"].to_pylist()
    )


def test_manifest_is_checked_and_stale_shards_do_not_survive(built, tmp_path):
    base, root, samples = built
    out = tmp_path / "train"
    many = write_shards(samples["train"], out, root, "train", "t", target_shard_bytes=TARGET_BYTES)
    one = write_shards(samples["train"], out, root, "train", "t")
    assert len(many.files) > 1 and len(one.files) == 1
    assert sorted(p.name for p in (out / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    assert sorted(p.name for p in out.iterdir()) == ["data", "dataset_info.json", "manifest.json"]
    assert not list(tmp_path.glob(".*"))  # no staging leftovers

    shard = out / one.files[0].path
    shard.write_bytes(shard.read_bytes()[:-1] + b"\x00")
    (out / "data" / "extra.parquet").write_bytes(b"x")
    assert verify_shards(out) == [
        "data/extra.parquet: not in the manifest",
        "data/train-00000-of-00001.parquet: sha256 differs from the manifest",
    ]
    with pytest.raises(ValueError, match="no samples"):
        write_shards([], tmp_path / "empty", root, "train", "t")
    with pytest.raises(ValueError, match="duplicate sample ids"):
        write_shards(samples["train"][:2] * 2, tmp_path / "dup", root, "train", "t")
    assert not (tmp_path / "dup").exists()


def test_sharegpt_export_matches_the_official_shape(built, tmp_path):
    base, root, samples = built
    path = tmp_path / "sharegpt.json"
    assert export_sharegpt(samples["train"], path, image_prefix="gpt4scene/") == len(samples["train"])
    rows = json.loads(path.read_text())
    ordered = ordered_samples(samples["train"], 0)
    assert rows[0] == {
        "conversations": [
            {"from": "human", "value": ordered[0].user_text},
            {"from": "gpt", "value": ordered[0].answer},
        ],
        "images": ["gpt4scene/" + p for p in ordered[0].images],
    }
    assert all(r["conversations"][0]["value"].count("<image>") == len(r["images"]) for r in rows)
    entry = sharegpt_dataset_info("gpt4scene_json", "sharegpt.json")["gpt4scene_json"]
    assert entry["file_name"] == "sharegpt.json" and entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "conversations", "images": "images"}
    assert entry["tags"] == {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}


def test_placeholder_mismatches_and_extra_files_are_caught(built, tmp_path):
    base, root, samples = built
    good = samples["val"][:3]
    bad = replace(good[0], sample_id="bad", prompt="look at <image> here")  # text with a stray placeholder
    out = tmp_path / "set"
    manifest = write_shards([*good, bad], out, root, "val", "v", extra_files={"notes.json": b"{}"})
    assert manifest.extra_files == (FileEntry("notes.json", hashlib.sha256(b"{}").hexdigest(), bytes=2),)
    assert placeholder_mismatches(out) == (4, ["bad: 10 placeholders for 9 images"])
    assert [r["sample_id"] for r in iter_rows(out, columns=("sample_id",))] == pq.read_table(shard_files(out))[
        "sample_id"
    ].to_pylist()
    (out / "notes.json").write_bytes(b"[]")
    assert verify_shards(out) == ["notes.json: sha256 differs from the manifest"]
    with pytest.raises(ValueError, match="extra file names"):
        write_shards(good, tmp_path / "x", root, "val", "v", extra_files={"manifest.json": b""})
