"""The dataset assets through Dagster: layout, metadata, checks, Hugging Face loading, rebuilds and data versions."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from assets.dataset import (
    SCENE_ASSETS,
    eval_sets,
    eval_sets_verified,
    samples_account_for_every_record,
    shard_set_check,
    task_samples,
    training_shards,
    training_shards_verified,
)
from ops.dataset.build import EVAL_FIELDS, eval_set_problems, read_scan2cap_corpus
from ops.dataset.samples import MULTI3DREFER_TEMPLATES, QA_SUFFIX, VARIANTS
from ops.dataset.scene_context import load_scene_context
from ops.dataset.shards import iter_rows, read_manifest, shard_files
from pipelines.definitions import defs
from resources.storage import StorageRoot

SAMPLES_CONFIG = {"ops": {"task_samples": {"config": {"variants": ["marked", "unmarked"], "seed": 0}}}}
SHARDS_CONFIG = {
    "ops": {
        "training_shards": {"config": {"target_shard_mb": 0.3}},
        "eval_sets": {"config": {"image_mode": "bytes"}},
    }
}
BUILT_VARIANTS = ("marked", "unmarked")
SHARD_ASSETS = [training_shards, eval_sets, training_shards_verified, eval_sets_verified]


def _materialise(storage: StorageRoot, instance: dg.DagsterInstance | None = None) -> list[dg.ExecuteInProcessResult]:
    """The samples, then the shards and eval set of each built variant (one partition run each)."""
    results = [
        dg.materialize(
            [task_samples, samples_account_for_every_record],
            resources={"storage": storage},
            instance=instance,
            run_config=SAMPLES_CONFIG,
        )
    ]
    for variant in BUILT_VARIANTS:
        results.append(
            dg.materialize(
                SHARD_ASSETS,
                resources={"storage": storage},
                instance=instance,
                run_config=SHARDS_CONFIG,
                partition_key=variant,
            )
        )
    assert all(result.success for result in results)
    return results


def _versions(instance: dg.DagsterInstance) -> dict[str, str]:
    out = {}
    for asset, partitions in (
        ("task_samples", [None]),
        ("training_shards", BUILT_VARIANTS),
        ("eval_sets", BUILT_VARIANTS),
    ):
        for partition in partitions:
            record = instance.get_latest_data_version_record(dg.AssetKey(asset), partition_key=partition)
            out[asset if partition is None else f"{asset}[{partition}]"] = record.asset_event.tags[
                "dagster/data_version"
            ]
    return out


def _tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def built(prepared_scenes, tmp_path_factory):
    """A private copy of the prepared scenes (tests change it), the dataset materialised once on a fresh instance."""
    base = tmp_path_factory.mktemp("dataset_assets")
    shutil.copytree(prepared_scenes.base, base, dirs_exist_ok=True)
    storage = StorageRoot(root=str(base / "root"), raw_root=str(base / "raw"))
    instance = dg.DagsterInstance.ephemeral()
    result = _materialise(storage, instance)
    return storage, instance, result, prepared_scenes.truth


def _materialisation(results, asset: str, partition: str | None = None):
    return next(
        e.event_specific_data.materialization
        for result in results
        for e in result.get_asset_materialization_events()
        if e.event_specific_data.materialization.asset_key == dg.AssetKey(asset)
        and e.event_specific_data.materialization.partition == partition
    )


def _check_evaluations(results) -> list:
    return [
        (e.event_specific_data, e.event_specific_data.partition)
        for result in results
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


def test_assets_write_the_documented_layout_with_rich_metadata(built):
    storage, _, result, truth = built
    dataset = storage.dataset_dir
    assert sorted(p.name for p in (dataset / "samples").iterdir()) == [
        "index.json",
        "train_marked.jsonl",
        "train_unmarked.jsonl",
        "val_marked.jsonl",
        "val_scan2cap_corpus.json",
        "val_unmarked.jsonl",
    ]
    for variant in ("marked", "unmarked"):
        assert read_manifest(storage.dataset.train_shards(variant)).split == "train"
        assert (storage.dataset.eval_set(variant) / "scan2cap_corpus.json").is_file()

    samples = _materialisation(result, "task_samples").metadata
    index = json.loads((dataset / "samples" / "index.json").read_text())
    assert samples["data_version"].value == index["data_version"]
    assert samples["train_scenes"].value == 1 and samples["val_scenes"].value == 1
    rows = samples["rows_per_task"].value
    assert set(rows) == {"train", "val"} and all(n > 0 for split in rows.values() for n in split.values())
    table = samples["kept_dropped"].value
    assert table.startswith("| split | task | records | kept | rows | dropped | dropped by reason |")
    assert table.count("\n| train |") == table.count("\n| val |") == 5
    assert samples["preview"].value.count("](data:image/jpeg;base64,") == 9  # BEV + 8 frames, as thumbnails

    for variant in BUILT_VARIANTS:
        shards = _materialisation(result, "training_shards", variant)
        manifest = read_manifest(storage.dataset.train_shards(variant))
        assert shards.metadata["data_versions"].value == {variant: manifest.data_version}
        assert shards.tags["dagster/data_version"] == shards.metadata["data_version"].value == manifest.data_version
        assert shards.metadata["num_files"].value == len(manifest.files) > 1
        assert shards.metadata["shard_files"].value.count(".parquet") == shards.metadata["num_files"].value
        assert shards.metadata["rows_per_task"].value == {variant: manifest.tasks}
        preview = shards.metadata["preview"].value
        assert "data:image/jpeg;base64," in preview and "**Assistant**" in preview
        evaluation = _materialisation(result, "eval_sets", variant)
        assert evaluation.tags["dagster/data_version"] == evaluation.metadata["data_version"].value
        assert (
            evaluation.metadata["data_versions"].value[variant]
            == read_manifest(storage.dataset.eval_set(variant)).data_version
        )


def test_checks_pass_and_fail_on_corrupted_files_and_broken_scenes(built, tmp_path):
    storage, _, result, truth = built
    evaluations = _check_evaluations(result)
    assert {(ev.check_name, partition) for ev, partition in evaluations} == {
        ("samples_account_for_every_record", None),
        *((name, v) for name in ("training_shards_verified", "eval_sets_verified") for v in BUILT_VARIANTS),
    }
    assert all(ev.passed for ev, _ in evaluations), evaluations
    marked_check = next(ev for ev, v in evaluations if ev.check_name == "training_shards_verified" and v == "marked")
    assert marked_check.metadata["rows_checked"].value["marked"] > 0

    # The same checks on a copy whose shard and corpus are tampered with.
    copy = StorageRoot(root=str(tmp_path / "root"), raw_root=storage.raw_root)
    shutil.copytree(storage.root_path, copy.root_path)
    shard = Path(shard_files(copy.dataset.train_shards("unmarked"))[0])
    shard.write_bytes(shard.read_bytes()[:-1] + b"\x00")
    (copy.dataset.eval_set("marked") / "scan2cap_corpus.json").write_text("{}")
    # The check bodies (a check-only run cannot take a partition key in Dagster 1.13).
    failed: dict[str, dict] = {}
    for variant in BUILT_VARIANTS:
        for name, check in (
            ("training_shards_verified", shard_set_check(copy, variant, copy.dataset.train_shards)),
            ("eval_sets_verified", shard_set_check(copy, variant, copy.dataset.eval_set, eval_set_problems)),
        ):
            if not check.passed:
                failed.setdefault(name, {}).update(check.metadata["problems"].value)
    assert list(failed["training_shards_verified"]) == ["unmarked"]
    assert "sha256 differs from the manifest" in failed["training_shards_verified"]["unmarked"][0]
    assert failed["eval_sets_verified"] == {"marked": ["scan2cap_corpus.json: sha256 differs from the manifest"]}

    # A prepared scene whose artifacts do not load: the samples still build, the check warns naming it.
    (copy.scene_dir(truth.val_ids[0]) / "frames" / "raw_03.jpg").unlink()
    samples = dg.materialize([task_samples, samples_account_for_every_record], resources={"storage": copy})
    (evaluation,) = [
        e.event_specific_data for e in samples.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "raw_03.jpg" in evaluation.metadata["broken_scenes"].value[truth.val_ids[0]]


def test_hf_datasets_loads_the_training_shards(built, tmp_path, monkeypatch):
    storage, _, _, _ = built
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    for variant, n_images in (("marked", 9), ("unmarked", 8)):
        out = storage.dataset.train_shards(variant)
        dataset = datasets.load_dataset(
            "parquet", data_files=shard_files(out), split="train", cache_dir=str(tmp_path / "hf" / variant)
        )
        assert len(dataset) == read_manifest(out).num_rows > 0
        for row in dataset:
            user = row["messages"][0]["content"]
            assert user.count("<image>") == len(row["images"]) == n_images, row["sample_id"]


def test_golden_rows_from_the_synthetic_annotation_files(built):
    """Shard rows against the published-schema files they came from: every task, Multi3DRefer with 0/1/many."""
    storage, _, _, truth = built
    ann = storage.annotations_dir
    scene_id = truth.train_ids[0]
    context = load_scene_context(storage.root_path, storage.raw_scene_dir(scene_id))
    marker = {oid: k for k, oid in enumerate(context.object_ids)}  # GT instances: ScanNet objectId → marker ID
    rows = {r["sample_id"]: r for r in iter_rows(storage.dataset.train_shards("marked"))}

    def turn(row):
        user, answer = (m["content"] for m in row["messages"])
        assert user.startswith("<image>" * 9) and len(row["images"]) == 9
        return user[len("<image>") * 9 :], answer

    seen = set()
    for record in json.loads((ann / "multi3drefer_train.json").read_text()):
        prompt, answer = turn(rows[f"multi3drefer-{scene_id}-{record['ann_id']}"])
        description = record["description"].strip().rstrip(".!?,;").rstrip()
        assert prompt in {t.replace("<description>", description) for t in MULTI3DREFER_TEMPLATES}
        ids = sorted(marker[int(o)] for o in record["object_ids"])
        tokens = [f"<OBJ{i:03d}>" for i in ids]
        if len(tokens) == 0:
            assert answer == "No.", record
        elif len(tokens) == 1:
            assert answer == f"Yes. {tokens[0]}.", record
        elif len(tokens) == 2:
            assert answer == f"Yes. {tokens[0]} and {tokens[1]}.", record
        else:
            assert answer == f"Yes. {', '.join(tokens[:-1])}, and {tokens[-1]}.", record
        seen.add(min(len(ids), 3))
    assert seen == {0, 1, 2, 3}  # zero, one, two and several targets all covered

    for record in json.loads((ann / "ScanRefer_filtered_train.json").read_text()):
        _, answer = turn(rows[f"scanrefer-{scene_id}-{record['object_id']}-{record['ann_id']}"])
        assert answer == f"<OBJ{marker[int(record['object_id'])]:03d}>."
    for record in json.loads((ann / "ScanQA_v1.0_train.json").read_text()):
        prompt, answer = turn(rows[f"scanqa-{scene_id}-{record['question_id']}-0"])
        assert prompt == record["question"] + QA_SUFFIX
        assert answer == record["answers"][0].capitalize() + ("" if record["answers"][0].endswith(".") else ".")
    questions = json.loads((ann / "v1_balanced_questions_train_scannetv2.json").read_text())["questions"]
    for record in questions:
        prompt, _ = turn(rows[f"sqa3d-{scene_id}-{record['question_id']}"])
        situations = [record["situation"], *record["alternative_situation"]]
        assert prompt in {f"{s} {record['question']}{QA_SUFFIX}" for s in situations}
    captions = [r for r in rows.values() if r["task"] == "scan2cap"]
    assert captions and all(turn(r)[1][0].isupper() for r in captions)


def test_eval_set_rows_carry_what_scoring_needs(built):
    storage, _, _, _ = built
    out = storage.dataset.eval_set("marked")
    corpus = read_scan2cap_corpus(out)
    rows = list(iter_rows(out))
    assert {r["task"] for r in rows} == set(EVAL_FIELDS)
    for row in rows:
        assert set(EVAL_FIELDS[row["task"]]) <= set(row["eval"]), row["sample_id"]
    m3d = [r["eval"] for r in rows if r["task"] == "multi3drefer"]
    assert {e["eval_type"] for e in m3d} == {"zt_wo_d", "zt_w_d", "st_wo_d", "st_w_d", "mt"}
    assert all(len(e["gt_boxes"]) == len(e["object_ids"]) for e in m3d)
    assert {r["eval"]["key"] for r in rows if r["task"] == "scan2cap"} <= set(corpus)


def test_rebuild_is_identical_and_one_changed_scene_changes_the_version(built):
    storage, instance, _, truth = built
    before_versions, before_tree = _versions(instance), _tree(storage.dataset_dir)
    _materialise(storage, instance)
    assert _versions(instance) == before_versions
    assert _tree(storage.dataset_dir) == before_tree

    frame = storage.scene_dir(truth.train_ids[0]) / "frames" / "frame_03.jpg"
    data = bytearray(frame.read_bytes())
    data[len(data) // 2] ^= 0x01
    frame.write_bytes(bytes(data))
    _materialise(storage, instance)
    after = _versions(instance)
    # the train scene's frame is embedded in the marked shards
    assert after["training_shards[marked]"] != before_versions["training_shards[marked]"]
    assert after["training_shards[unmarked]"] == before_versions["training_shards[unmarked]"]  # raw_XX.jpg
    assert after["task_samples"] == before_versions["task_samples"]  # samples name images, they do not hold them
    assert after["eval_sets[marked]"] == before_versions["eval_sets[marked]"]  # the val scene did not change
    changed = {path for path, digest in _tree(storage.dataset_dir).items() if before_tree.get(path) != digest}
    assert changed and all(p.startswith("shards/train_marked/") for p in changed)  # unmarked uses raw_XX.jpg


def test_definitions_wire_the_dataset_assets_to_every_scene():
    graph = defs.resolve_asset_graph()
    parents = graph.get(task_samples.key).parent_keys
    assert set(SCENE_ASSETS) <= parents and dg.AssetKey("bev_image") in parents
    assert graph.get(dg.AssetKey("bev_image")).partitions_def is not None
    assert graph.get(task_samples.key).partitions_def is None
    assert graph.get(dg.AssetKey("training_shards")).partitions_def.get_partition_keys() == list(VARIANTS)

    def assets_of(job: str) -> set[str]:
        return {key.to_user_string() for key in defs.resolve_job_def(job).asset_layer.executable_asset_keys}

    assert assets_of("samples_job") == {"task_samples"}
    assert assets_of("dataset_job") == {"training_shards", "eval_sets"}
    assert {c.name for c in defs.resolve_asset_graph().asset_check_keys} >= {
        "samples_account_for_every_record",
        "training_shards_verified",
        "eval_sets_verified",
    }
