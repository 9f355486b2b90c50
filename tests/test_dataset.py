"""The dataset build stages (ops.dataset.build) and `gpt4scene shards`: split scenes, left-out scenes and rows,
layout."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys

import pytest

from ops.core.atomic import canonical_json
from ops.core.errors import SceneInputError
from ops.core.layout import DatasetLayout
from ops.dataset.build import (
    SampleSettings,
    ShardSettings,
    build_eval_set,
    build_task_samples,
    build_training_shards,
    read_samples_index,
)
from ops.dataset.preview import sample_markdown
from ops.dataset.samples import read_samples_jsonl
from ops.dataset.samples_index import SamplesIndex
from ops.dataset.shards import iter_rows, read_manifest, verify_shards


@pytest.fixture
def workspace(prepared_scenes, tmp_path):
    """Copies of the prepared scenes' artifacts and annotations (tests change them); the raw scans are shared."""
    root, ann = tmp_path / "root", tmp_path / "annotations"
    shutil.copytree(prepared_scenes.root, root)
    shutil.copytree(prepared_scenes.annotations, ann)
    return root, prepared_scenes.raw / "scans", ann, tmp_path / "dataset", prepared_scenes.truth


def test_left_out_scenes_and_malformed_rows_are_reported_and_the_rest_goes_on(workspace):
    root, scans, ann, out, truth = workspace
    train_scene, val_scene = truth.train_ids[0], truth.val_ids[0]
    with open(ann / "scannetv2_train.txt", "a") as handle:
        handle.write("scene0999_00\n")  # listed, never prepared
    (root / "scenes" / val_scene / "frames" / "raw_03.jpg").unlink()  # prepared, but broken
    scanqa = json.loads((ann / "ScanQA_v1.0_train.json").read_text())
    del scanqa[2]["question"]
    (ann / "ScanQA_v1.0_train.json").write_text(json.dumps(scanqa))

    index = build_task_samples(root, scans, ann, out, SampleSettings(variants=("marked", "no_bev")))
    train, val = index.splits["train"], index.splits["val"]
    assert train.scenes == [train_scene] and list(train.unavailable_scenes) == ["scene0999_00"]
    assert "not prepared" in train.unavailable_scenes["scene0999_00"]
    assert val.scenes == [] and "raw_03.jpg" in val.unavailable_scenes[val_scene]
    assert val.stats["scanqa"].dropped_by_reason == {"scene_unavailable": val.stats["scanqa"].records}
    assert train.annotation_issues == 1
    assert train.annotation_issues_listed == [f"{ann / 'ScanQA_v1.0_train.json'} row 2: missing field 'question'"]
    assert train.stats["scanqa"].records == len(scanqa) - 1 and train.rows["scanqa"] > 0
    assert read_samples_index(out) == index
    written = (out / "samples" / "index.json").read_text()
    assert (
        written
        == canonical_json(index.to_dict())
        == canonical_json(SamplesIndex.from_dict(json.loads(written)).to_dict())
    )

    marked = read_samples_jsonl(DatasetLayout(out).samples_file("train", "marked"))
    no_bev = read_samples_jsonl(DatasetLayout(out).samples_file("train", "no_bev"))
    assert [s.sample_id for s in marked] == [s.sample_id for s in no_bev] and len(marked) == train.num_rows
    assert all(s.images == m.images[1:] for s, m in zip(no_bev, marked, strict=True))

    manifests = build_training_shards(root, out, ShardSettings(sharegpt_export=True))
    assert set(manifests) == {"marked", "no_bev"}
    for variant, manifest in manifests.items():
        assert verify_shards(DatasetLayout(out).train_shards(variant)) == []
        assert manifest.metadata["samples_data_version"] == index.data_version
        shared = json.loads(DatasetLayout(out).sharegpt(variant).read_text())
        assert len(shared) == manifest.num_rows and set(shared[0]) == {"conversations", "images"}
    info = json.loads((DatasetLayout(out).sharegpt("marked").parent / "dataset_info.json").read_text())
    assert set(info) == {"gpt4scene_train_marked_json", "gpt4scene_train_no_bev_json"}
    with pytest.raises(ValueError, match=rf"no val samples.*{val_scene}.*raw_03\.jpg"):
        build_eval_set(root, out, variants=["marked"])
    with pytest.raises(ValueError, match="not built"):
        build_training_shards(root, out, variants=["unmarked"])


def test_eval_set_in_paths_mode_versions_its_images(workspace):
    root, scans, ann, out, truth = workspace
    build_task_samples(root, scans, ann, out)
    first = build_eval_set(root, out, ShardSettings(image_mode="paths"))["marked"]
    eval_dir = DatasetLayout(out).eval_set("marked")
    assert sorted(p.name for p in eval_dir.iterdir()) == [
        "data",
        "dataset_info.json",
        "manifest.json",
        "scan2cap_corpus.json",
    ]
    rows = list(iter_rows(eval_dir))
    assert all(isinstance(p, str) and (root / p).is_file() for r in rows for p in r["images"])
    assert {e.path for e in first.images} == {p for r in rows for p in r["images"]}
    markdown = sample_markdown(rows[0], root)
    assert markdown.count("](data:image/jpeg;base64,") == 9
    assert f"**Assistant**: {html.escape(rows[0]['messages'][1]['content'])}" in markdown
    assert "9 × `<image>`" in markdown and "<image><image>" not in markdown

    bev = root / "scenes" / truth.val_ids[0] / "bev" / "bev.png"
    bev.write_bytes(bev.read_bytes() + b"\x00")  # the Parquet files only hold its path
    assert verify_shards(eval_dir, root) == [
        f"image scenes/{truth.val_ids[0]}/bev/bev.png: sha256 differs from the manifest"
    ]
    again = build_eval_set(root, out, ShardSettings(image_mode="paths"))["marked"]
    assert again.files == first.files and again.data_version != first.data_version


def test_missing_split_file_names_the_file(workspace):
    root, scans, ann, out, _ = workspace
    (ann / "scannetv2_val.txt").unlink()
    with pytest.raises(SceneInputError, match=r"scannetv2_val\.txt"):
        build_task_samples(root, scans, ann, out)
    with pytest.raises(SceneInputError, match="build the task samples first"):
        build_training_shards(root, out)
    with pytest.raises(ValueError, match="variants"):
        SampleSettings(variants=("marked", "marked"))


def _gpt4scene(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_cli_shards(prepared_scenes, tmp_path):
    out = tmp_path / "dataset"
    done = _gpt4scene(
        "shards",
        "--prepared",
        str(prepared_scenes.root),
        "--annotations",
        str(prepared_scenes.annotations),
        "--out",
        str(out),
        "--variant",
        "marked",
        "--variant",
        "unmarked",
        "--seed",
        "7",
        "--shard-mb",
        "0.5",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "train_marked:" in done.stdout and "val_unmarked:" in done.stdout
    for variant, n_images in (("marked", 9), ("unmarked", 8)):
        manifest = read_manifest(DatasetLayout(out).train_shards(variant))
        assert manifest.seed == 7 and len(manifest.files) > 1
        assert verify_shards(DatasetLayout(out).train_shards(variant)) == []
        row = next(iter_rows(DatasetLayout(out).eval_set(variant)))
        assert len(row["images"]) == n_images and isinstance(row["images"][0], bytes) and row["eval"]
    assert read_samples_index(out).seed == 7

    bad = _gpt4scene(
        "shards",
        "--prepared",
        str(prepared_scenes.root),
        "--annotations",
        str(tmp_path / "none"),
        "--out",
        str(tmp_path / "bad"),
    )
    assert bad.returncode == 2 and "scannetv2_train.txt" in bad.stderr
    assert not (tmp_path / "bad" / "samples").exists()
