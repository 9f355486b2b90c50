"""The Dagster layer of the foundation: Definitions, the discovery sensor, synthetic scenes and scene manifests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from assets.partitions import partition_range_tags, scene_partitions
from assets.raw_scenes import scene_manifest, synthetic_scenes
from ops.core.errors import SceneInputError
from ops.scannet.scene import discover_scenes
from pipelines.definitions import defs
from pipelines.sensors import scene_discovery_sensor
from resources.storage import StorageRoot

TINY = {
    "n_scenes": 2,
    "seed": 7,
    "n_frames": 24,
    "color_width": 160,
    "color_height": 120,
    "depth_width": 80,
    "depth_height": 60,
}


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> StorageRoot:
    """A storage root whose raw scans were written by materialising the `synthetic_scenes` asset."""
    root = tmp_path_factory.mktemp("root")
    storage = StorageRoot(root=str(root))
    result = dg.materialize(
        [synthetic_scenes],
        resources={"storage": storage},
        run_config={"ops": {"synthetic_scenes": {"config": TINY}}},
    )
    assert result.success
    return storage


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("scene_job").partitions_def == scene_partitions
    assert defs.resolve_sensor_def("scene_discovery_sensor") is not None


def test_synthetic_scenes_asset_writes_scannet_layout(storage):
    scenes = sorted(p.name for p in storage.scans_dir.iterdir())
    assert len(scenes) == 2
    for scene_id in scenes:
        folder = storage.scans_dir / scene_id
        for suffix in (".sens", "_vh_clean_2.ply", "_vh_clean_2.0.010000.segs.json", ".aggregation.json", ".txt"):
            assert (folder / f"{scene_id}{suffix}").is_file(), suffix
    assert (storage.annotations_dir / "ScanRefer_filtered_val.json").is_file()


def test_sensor_adds_only_valid_scenes(storage, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(storage.scans_dir, raw / "scans")
    valid = sorted(p.name for p in (raw / "scans").iterdir())
    shutil.copytree(raw / "scans" / valid[0], raw / "scans" / "a,b")
    broken = raw / "scans" / "scene_broken"
    shutil.copytree(raw / "scans" / valid[0], broken)
    for path in broken.iterdir():  # a copy under a new name lacks its <scene>_… files, then loses its mesh too
        path.rename(broken / path.name.replace(valid[0], "scene_broken"))
    (broken / "scene_broken_vh_clean_2.ply").unlink()
    (raw / "scans" / "empty").mkdir()
    (raw / "scans" / ".scene_tmp").mkdir()  # hidden staging folders are ignored

    found = discover_scenes(raw / "scans")
    assert found.valid == valid
    assert set(found.invalid) == {"a,b", "scene_broken", "empty"}
    assert any("scene_broken_vh_clean_2.ply" in problem for problem in found.invalid["scene_broken"])

    instance = dg.DagsterInstance.ephemeral()
    sensor_storage = StorageRoot(root=str(tmp_path), raw_root=str(raw))
    context = dg.build_sensor_context(instance=instance, resources={"storage": sensor_storage})
    result = scene_discovery_sensor(context)
    (request,) = result.dynamic_partitions_requests
    assert request.partition_keys == valid

    instance.add_dynamic_partitions(scene_partitions.name, valid)
    again = scene_discovery_sensor(dg.build_sensor_context(instance=instance, resources={"storage": sensor_storage}))
    assert not again.dynamic_partitions_requests
    assert "no new scenes" in str(again.skip_reason)


def test_scene_manifest_materialises_summary(storage):
    instance = dg.DagsterInstance.ephemeral()
    scene_id = sorted(p.name for p in storage.scans_dir.iterdir())[0]
    instance.add_dynamic_partitions(scene_partitions.name, [scene_id])
    result = dg.materialize([scene_manifest], partition_key=scene_id, instance=instance, resources={"storage": storage})
    assert result.success
    (materialization,) = result.asset_materializations_for_node("scene_manifest")
    assert materialization.metadata["num_frames"].value == TINY["n_frames"]
    assert 0 < materialization.metadata["num_valid_frames"].value < TINY["n_frames"]
    manifest = json.loads(storage.scene(scene_id).manifest.read_text())
    assert manifest["scene_id"] == scene_id
    assert manifest["num_objects"] >= 8


def test_scene_manifest_covers_a_range_in_one_run(storage):
    """A backfill's single run: one materialisation per scene with its own metadata and Dagster's code and data
    version tags; a scene that cannot be read fails only itself, and the run names it."""
    instance = dg.DagsterInstance.ephemeral()
    scenes = sorted(p.name for p in storage.scans_dir.iterdir())
    instance.add_dynamic_partitions(scene_partitions.name, scenes)
    job = dg.Definitions(
        assets=[scene_manifest], resources={"storage": storage}
    ).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, tags=partition_range_tags(scenes[0], scenes[-1]))
    assert result.success
    materialisations = {m.partition: m for m in result.asset_materializations_for_node("scene_manifest")}
    assert sorted(materialisations) == scenes
    for scene_id, materialisation in materialisations.items():
        manifest = json.loads(Path(materialisation.metadata["path"].value).read_text())
        assert manifest["scene_id"] == scene_id
        assert manifest["num_frames"] == materialisation.metadata["num_frames"].value
        assert materialisation.tags["dagster/code_version"] == scene_manifest.code_versions_by_key[scene_manifest.key]
        assert materialisation.tags["dagster/data_version"]

    missing = "scene0999_00"  # registered, but its folder is gone
    instance.add_dynamic_partitions(scene_partitions.name, [missing])
    failed = job.execute_in_process(
        instance=instance, tags=partition_range_tags(scenes[0], missing), raise_on_error=False
    )
    assert not failed.success
    recorded = [m.partition for m in failed.asset_materializations_for_node("scene_manifest")]
    assert recorded == scenes
    (failure,) = [e for e in failed.all_events if e.is_step_failure]
    assert f"1 of 3 scenes failed: {missing}" in str(failure.event_specific_data.error)


@pytest.mark.parametrize("hostile", ["../x", "a,b", "", "x" * 65, "a/b", "scene 1"])
def test_hostile_scene_ids_never_become_paths(storage, hostile):
    with pytest.raises(SceneInputError, match="invalid scene id"):
        storage.scene_dir(hostile)
    with pytest.raises(SceneInputError, match="invalid scene id"):
        storage.raw_scene_dir(hostile)
