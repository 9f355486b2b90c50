"""Scheduled, incremental rebuilds through Dagster's own automation evaluation: after a full build, changing one
scene's raw files rebuilds only that scene's per-scene assets and then the dataset, nothing else."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.partitions import partition_range_tags, scene_partitions
from ops.synthetic import generate_dataset
from pipelines.definitions import defs
from pipelines.schedules import REBUILD_CRON, dataset_rebuild_schedule
from pipelines.sensors import scene_discovery_sensor
from resources.storage import StorageRoot

SCENE_KEYS = ["scene_manifest", "point_cloud", "instance_masks", "bev_image", "marked_frames"]
DATASET_KEYS = ["task_samples", "training_shards", "eval_sets"]
# What the rebuild requests by itself: the samples; the variant partitions of the shards follow only once built.
REBUILT_KEYS = ["task_samples"]
TINY_PROMPTS = {
    "n_frames": 4,
    "image_resolution": 128,
    "bev_long_side": 256,
    "bev_marker_size": 16,
    "frame_marker_size": 10,
}


class Rebuild:
    """One Dagster instance and the project's Definitions; ticks the rebuild conditions and executes what they
    request the way the daemon would (one run for the per-scene assets over the requested scenes, then the rest)."""

    def __init__(self, instance: dg.DagsterInstance, definitions: dg.Definitions = defs):
        self.instance, self.defs, self.cursor = instance, definitions, None
        self.graph = definitions.resolve_asset_graph()

    def observe(self) -> None:
        job = self.defs.resolve_job_def("observe_raw_scans")
        assert job.execute_in_process(instance=self.instance).success

    def tick(self) -> dict[str, list[str | None]]:
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        requested = {}
        for key in self.graph.materializable_asset_keys:
            if result.get_num_requested(key):
                requested[key.to_user_string()] = sorted(result.get_requested_partitions(key), key=str)
        return requested

    def execute(self, requested: dict[str, list[str | None]]) -> None:
        job = self.defs.resolve_implicit_global_asset_job_def()
        keys = self.instance.get_dynamic_partitions(scene_partitions.name)
        scene = [k for k in SCENE_KEYS if k in requested]
        if scene:  # one run, as the backfill makes for assets that share the single-run policy
            partitions = sorted({p for k in scene for p in requested[k]}, key=keys.index)
            assert [keys.index(p) for p in partitions] == list(
                range(keys.index(partitions[0]), keys.index(partitions[-1]) + 1)
            )
            stages = [k for k in scene if k != "scene_manifest"]
            self._run(
                job,
                scene,
                tags=partition_range_tags(partitions[0], partitions[-1]),
                run_config={"ops": {"visual_prompts": {"config": TINY_PROMPTS}}} if stages else None,
            )
        rest = [k for k in requested if k not in SCENE_KEYS]
        if rest:
            self._run(job, rest)

    def _run(self, job, keys, **kwargs) -> None:
        result = job.execute_in_process(
            instance=self.instance, asset_selection=[dg.AssetKey(k) for k in keys], raise_on_error=False, **kwargs
        )
        assert result.success, [str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure]

    def materialisations(self) -> dict[tuple[str, str | None], int]:
        """Number of materialisations per (asset, partition)."""
        counts: dict[tuple[str, str | None], int] = {}
        for key in SCENE_KEYS + DATASET_KEYS:
            records = self.instance.fetch_materializations(dg.AssetKey(key), limit=1000).records
            for record in records:
                slot = (key, record.partition_key)
                counts[slot] = counts.get(slot, 0) + 1
        return counts


@pytest.fixture
def scans(tmp_path, monkeypatch) -> StorageRoot:
    storage = StorageRoot(root=str(tmp_path / "root"))
    generate_dataset(storage.raw_path, n_scenes=3, seed=4, n_frames=20, color_size=(160, 120), depth_size=(80, 60))
    for name, value in {
        "GPT4SCENE_ROOT": storage.root,
        "GPT4SCENE_RAW_ROOT": str(storage.raw_path),
        "GPT4SCENE_SCANS_ROOT": "",
        "GPT4SCENE_RAY_ADDRESS": "",
    }.items():
        monkeypatch.setenv(name, value)
    return storage


def test_schedule_and_sensors_are_wired():
    assert dataset_rebuild_schedule.cron_schedule == REBUILD_CRON
    assert dataset_rebuild_schedule.job_name == "observe_raw_scans"
    assert defs.resolve_sensor_def("rebuild_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    for key in SCENE_KEYS:
        assert graph.get(dg.AssetKey(key)).automation_condition.get_label() == "scene_rebuild", key
        assert graph.get(dg.AssetKey(key)).code_version, key
        # One policy and partitioning for all: a backfill runs a range's manifests and visual prompts in one run.
        assert graph.get(dg.AssetKey(key)).backfill_policy == dg.BackfillPolicy.single_run(), key
        assert graph.get(dg.AssetKey(key)).partitions_def == scene_partitions, key
    for key in DATASET_KEYS:
        assert graph.get(dg.AssetKey(key)).automation_condition.get_label() == "dataset_rebuild", key


@pytest.mark.slow
def test_rebuild_recomputes_only_the_changed_scene_then_the_dataset(scans):
    instance = dg.DagsterInstance.ephemeral()
    rebuild = Rebuild(instance)
    assert rebuild.tick() == {}  # nothing registered yet

    # The discovery sensor registers the scans and asks for their observation.
    sensor = scene_discovery_sensor(dg.build_sensor_context(instance=instance, resources={"storage": scans}))
    (added,) = sensor.dynamic_partitions_requests
    scenes = list(added.partition_keys)
    assert len(scenes) == 3 and len(sensor.run_requests) == 1  # the sensor's job: observe_raw_scans
    instance.add_dynamic_partitions(scene_partitions.name, scenes)
    rebuild.observe()

    first = rebuild.tick()  # every scene is missing: all of them, scene assets only
    assert first == {key: scenes for key in SCENE_KEYS}
    rebuild.execute(first)
    second = rebuild.tick()  # the scenes are done: now the dataset, once
    assert second == {key: [None] for key in REBUILT_KEYS}
    rebuild.execute(second)
    assert rebuild.tick() == {}
    rebuild.observe()  # the nightly observation finds nothing new
    assert rebuild.tick() == {}
    before = rebuild.materialisations()
    untouched = {p: p.stat().st_mtime_ns for s in scenes[:1] + scenes[2:] for p in scans.scene_dir(s).rglob("*")}

    changed = scenes[1]
    meta = scans.raw_scene_dir(changed) / f"{changed}.txt"
    meta.write_text(meta.read_text().replace("sceneType = ", "sceneType = Renovated "))
    rebuild.observe()
    third = rebuild.tick()
    assert third == {key: [changed] for key in SCENE_KEYS}
    rebuild.execute(third)
    fourth = rebuild.tick()
    assert fourth == {key: [None] for key in REBUILT_KEYS}
    rebuild.execute(fourth)
    assert rebuild.tick() == {}

    after = rebuild.materialisations()
    recomputed = sorted(slot for slot in after if after[slot] != before.get(slot, 0))
    assert recomputed == sorted([(key, changed) for key in SCENE_KEYS] + [(key, None) for key in REBUILT_KEYS])
    assert all(after[slot] == before[slot] + 1 for slot in recomputed)
    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched  # other scenes' artifacts never rewritten


def test_code_version_change_rebuilds_that_stage_for_every_scene(scans):
    instance = dg.DagsterInstance.ephemeral()
    scenes = sorted(p.name for p in scans.scans_dir.iterdir())
    instance.add_dynamic_partitions(scene_partitions.name, scenes)
    rebuild = Rebuild(instance)
    rebuild.observe()
    # Pretend everything was built: reported materialisations carry no data, only the fact of a build.
    for key in SCENE_KEYS:
        for scene in scenes:
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=scene))
    rebuild.tick()
    assert rebuild.tick() == {}

    def bump_bev(spec: dg.AssetSpec) -> dg.AssetSpec:
        return spec.replace_attributes(code_version="2") if spec.key == dg.AssetKey("bev_image") else spec

    bumped = dg.Definitions(
        assets=[dg.map_asset_specs(bump_bev, [a])[0] if isinstance(a, dg.AssetsDefinition) else a for a in defs.assets],
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        resources=defs.resources,
    )
    rebuild.defs, rebuild.graph = bumped, bumped.resolve_asset_graph()
    requested = rebuild.tick()
    assert requested["bev_image"] == scenes
    assert not {"scene_manifest", "point_cloud", "instance_masks", "marked_frames"} & set(requested)
