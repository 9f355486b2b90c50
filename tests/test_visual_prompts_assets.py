"""The per-scene visual-prompt assets through Dagster and local Ray: one run over several scenes, one of them bad."""

from __future__ import annotations

import base64
import json
import shutil

import cv2
import dagster as dg
import numpy as np
import pytest

from assets.partitions import partition_range_tags, scene_partitions
from assets.raw_scenes import synthetic_scenes
from assets.visual_prompts import visual_prompts
from ops.prompts.driver import (
    PREVIEW_BEV_MAX_BYTES,
    PREVIEW_BEV_SIDE,
    PREVIEW_SHEET_MAX_BYTES,
    PREVIEW_SHEET_WIDTH,
)
from resources.ray import SceneRay
from resources.storage import StorageRoot

TINY = {
    "n_scenes": 2,
    "seed": 3,
    "n_frames": 30,
    "color_width": 320,
    "color_height": 240,
    "depth_width": 160,
    "depth_height": 120,
}
STAGES = ["point_cloud", "instance_masks", "bev_image", "marked_frames"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Two synthetic scenes plus a copy of one whose .sens is truncated, run together in one range run."""
    root = tmp_path_factory.mktemp("vp")
    storage = StorageRoot(root=str(root))
    assert dg.materialize(
        [synthetic_scenes], resources={"storage": storage}, run_config={"ops": {"synthetic_scenes": {"config": TINY}}}
    ).success
    good = sorted(p.name for p in storage.scans_dir.iterdir())
    bad = "scene_zz_truncated"
    shutil.copytree(storage.scans_dir / good[0], storage.scans_dir / bad)
    for path in sorted((storage.scans_dir / bad).iterdir()):
        path.rename(path.with_name(path.name.replace(good[0], bad)))
    sens = storage.scans_dir / bad / f"{bad}.sens"
    sens.write_bytes(sens.read_bytes()[: sens.stat().st_size // 2])

    instance = dg.DagsterInstance.ephemeral()
    keys = good + [bad]
    instance.add_dynamic_partitions(scene_partitions.name, keys)
    job = dg.Definitions(
        assets=[visual_prompts],
        resources={"storage": storage, "ray_cluster": SceneRay(temp_dir=str(root / "ray"))},
    ).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        run_config={"ops": {"visual_prompts": {"config": {"n_frames": 8}}}},
        tags=partition_range_tags(keys[0], keys[-1]),
        raise_on_error=False,
    )
    return storage, instance, result, good, bad


def test_good_scenes_materialise_and_bad_scene_fails_alone(prepared):
    storage, instance, result, good, bad = prepared
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert bad in message and f"{bad}.sens" in message and good[0] not in message.split(bad)[0].split(":")[-1]
    for stage in STAGES:
        assert instance.get_materialized_partitions(dg.AssetKey(stage)) == set(good)
    assert not (storage.scene_dir(bad) / "frames").exists()


def test_artifacts_follow_design_layout(prepared):
    storage, _, _, good, _ = prepared
    scene_dir = storage.scene_dir(good[0])
    coord = np.load(scene_dir / "pointcloud" / "coord.npy")
    assert coord.dtype == np.float32 and coord.shape[1] == 3
    instance = np.load(scene_dir / "instances" / "instance.npy")
    assert instance.dtype == np.int32 and len(instance) == len(coord)
    boxes = np.load(scene_dir / "instances" / "boxes.npy")
    assert boxes.shape[1] == 6 and len(boxes) == instance.max() + 1
    bev = json.loads((scene_dir / "bev" / "bev.json").read_text())
    assert set(bev) == {"size", "world_to_pixel", "markers"} and len(bev["markers"]) >= 8
    frames = json.loads((scene_dir / "frames" / "frames.json").read_text())["frames"]
    assert len(frames) == 8
    for n, entry in enumerate(frames):
        assert entry["file"] == f"frame_{n:02d}.jpg"
        assert (scene_dir / "frames" / f"raw_{n:02d}.jpg").is_file()
        assert set(entry) == {"file", "source_index", "pose", "intrinsics", "markers"}
    assert sum(len(entry["markers"]) for entry in frames) > 0


def test_checks_pass_for_good_scenes(prepared):
    _, _, result, good, _ = prepared
    evaluations = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert {(ev.partition, ev.check_name) for ev in evaluations} == {
        (scene, check) for scene in good for check in ("bev_not_blank", "frames_distinct", "markers_complete")
    }
    assert all(ev.passed for ev in evaluations), [(ev.partition, ev.check_name, ev.metadata) for ev in evaluations]


def test_materialisations_carry_previews(prepared):
    _, _, result, good, _ = prepared
    materialisations = [m.event_specific_data.materialization for m in result.get_asset_materialization_events()]
    bev = next(m for m in materialisations if m.asset_key == dg.AssetKey("bev_image") and m.partition == good[0])
    assert bev.metadata["preview"].value.startswith("![BEV](data:image/webp;base64,")
    frames = next(m for m in materialisations if m.asset_key == dg.AssetKey("marked_frames"))
    assert frames.metadata["num_frames"].value == 8
    previews = (
        (bev.metadata["preview"].value, PREVIEW_BEV_SIDE, PREVIEW_BEV_MAX_BYTES),
        (frames.metadata["contact_sheet"].value, PREVIEW_SHEET_WIDTH, PREVIEW_SHEET_MAX_BYTES),
    )
    for markdown, long_side, budget in previews:
        data = base64.b64decode(markdown.split("base64,", 1)[1].rstrip(")"))
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert len(data) <= budget and image is not None and max(image.shape[:2]) == long_side
