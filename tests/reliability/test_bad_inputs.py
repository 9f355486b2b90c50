"""A bulk run of the visual prompts over good scenes and a corpus of broken ones: every broken scene fails alone
with an error naming the scene and the file, the good scenes complete, nothing half-written is left behind."""

from __future__ import annotations

import tempfile

import dagster as dg
import pytest
from corpus import DEFECTS, write_broken_scene

from assets.partitions import partition_range_tags, scene_partitions
from assets.visual_prompts import visual_prompts
from ops.synthetic import generate_dataset
from resources.ray import SceneRay
from resources.storage import StorageRoot

STAGES = ["point_cloud", "instance_masks", "bev_image", "marked_frames"]
TINY_PROMPTS = {
    "n_frames": 2,
    "image_resolution": 96,
    "bev_long_side": 128,
    "bev_marker_size": 10,
    "frame_marker_size": 6,
}
HOSTILE = "../../escape"


@pytest.fixture(scope="module")
def bulk(tmp_path_factory):
    root = tmp_path_factory.mktemp("bulk")
    storage = StorageRoot(root=str(root))
    generate_dataset(storage.raw_path, n_scenes=2, seed=9, n_frames=12, color_size=(96, 72), depth_size=(48, 36))
    good = sorted(p.name for p in storage.scans_dir.iterdir())
    bad = dict(write_broken_scene(storage.scans_dir, kind) for kind in DEFECTS)
    keys = [good[0], *sorted(bad), good[1], HOSTILE]
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(scene_partitions.name, keys)
    with tempfile.TemporaryDirectory(prefix="g4s-ray-", dir="/tmp") as ray_tmp:
        result = dg.materialize(
            [visual_prompts],
            instance=instance,
            raise_on_error=False,
            resources={"storage": storage, "ray_cluster": SceneRay(temp_dir=ray_tmp)},
            run_config={"ops": {"visual_prompts": {"config": TINY_PROMPTS}}},
            tags=partition_range_tags(keys[0], keys[-1]),
        )
    failure = next(e for e in result.all_events if e.is_step_failure)
    return storage, instance, result, good, bad, failure.step_failure_data.user_failure_data.metadata


def test_corpus_has_at_least_thirty_kinds():
    assert len(DEFECTS) >= 30


@pytest.mark.parametrize("kind", sorted(DEFECTS))
def test_each_broken_scene_fails_naming_scene_and_file(bulk, kind):
    storage, _, result, _, bad, metadata = bulk
    assert not result.success
    scene_id = f"bad_{kind}"
    reason = metadata["failed_scenes"].value[scene_id]
    assert f"scene {scene_id!r}" in reason and "SceneInputError" in reason
    assert str(storage.raw_scene_dir(scene_id) / scene_id) + bad[scene_id] in reason, reason


def test_hostile_scene_id_fails_alone_and_builds_no_path(bulk):
    storage, _, _, _, _, metadata = bulk
    assert "invalid scene id" in metadata["failed_scenes"].value[HOSTILE]
    assert not (storage.root_path.parent / "escape").exists() and not (storage.root_path / "escape").exists()


def test_good_scenes_complete(bulk):
    _, instance, _, good, bad, metadata = bulk
    assert set(metadata["failed_scenes"].value) == set(bad) | {HOSTILE}
    for stage in STAGES:
        assert instance.get_materialized_partitions(dg.AssetKey(stage)) == set(good), stage


def test_nothing_half_written(bulk):
    storage, _, _, good, bad, _ = bulk
    scenes = storage.root_path / "scenes"
    leftovers = [p for p in scenes.rglob("*") if p.name.startswith(".")]
    assert not leftovers, leftovers  # no staging folder or temporary file survives a failure
    required = {
        "pointcloud": {"coord.npy", "color.npy"},
        "instances": {"instance.npy", "boxes.npy", "labels.json"},
        "bev": {"bev.png", "bev.json"},
    }
    for scene_id in bad:
        folder = scenes / scene_id
        assert not (folder / "frames").exists(), scene_id  # every defect stops the scene before its last stage
        for stage, names in required.items():  # an earlier stage's folder is either whole or absent
            if (folder / stage).exists():
                assert names <= {p.name for p in (folder / stage).iterdir()}, (scene_id, stage)
    for scene_id in good:
        assert (scenes / scene_id / "frames" / "frames.json").is_file()
