"""Per-scene visual prompts: `point_cloud`, `instance_masks`, `bev_image`, `marked_frames`, fanned out over Ray.

One multi-asset, partitioned by scene. A run for one partition (the UI's "Materialize") and a backfill over many
(one run: `BackfillPolicy.single_run`) go the same way: every scene becomes one Ray task running
`ops.prompts.driver.prepare_scene`; all tasks are submitted (largest scenes first, so a run does not end waiting
on one long scene), then collected with `ray.wait` as they finish. Each finished scene reports its own
materialisations and checks, so one bad scene fails only itself: the others are recorded, and the run then fails
naming every bad scene with its reason.
"""

import time

import dagster as dg
from dagster_ray import RayResource

from assets.partition_runs import (
    CHECK_STAGES,
    finished_results,
    on_this_node,
    partition_events,
    partition_folders,
    partitions_failed,
)
from assets.partitions import scene_partitions
from assets.raw_scenes import scene_manifest
from ops.prompts.driver import STAGES, PromptSettings, SceneResult, largest_first, prepare_scene
from resources.config import settings_config
from resources.storage import StorageRoot

_DESCRIPTIONS = {
    "point_cloud": "Scene point cloud in the axis-aligned frame: pointcloud/coord.npy, color.npy.",
    "instance_masks": "Object instances: instances/instance.npy, boxes.npy, labels.json (object ID k = row k).",
    "bev_image": "Top-down BEV image with object-ID markers: bev/bev.png, bev/bev.json.",
    "marked_frames": "Sampled frames with object-ID markers: frames/frame_XX.jpg, raw_XX.jpg, frames.json.",
}
_UPSTREAM = {
    "point_cloud": [scene_manifest.key],
    "instance_masks": ["point_cloud"],
    "bev_image": ["point_cloud", "instance_masks"],
    "marked_frames": ["point_cloud", "instance_masks"],
}
# Bump a stage's code version when what it writes changes (ops/ edits that alter artifacts): the rebuild sensor then
# recomputes that stage for every scene (pipelines/schedules.py); unchanged stages are left alone.
# marked_frames 2: frames are shrunk by 2x2 averaging then bilinear (other JPEG bytes; same markers and K).
CODE_VERSIONS = {"point_cloud": "1", "instance_masks": "1", "bev_image": "1", "marked_frames": "2"}


class VisualPromptsConfig(settings_config(PromptSettings, exclude=("bev_margin", "depth_tolerance", "seed"))):
    """Launchpad settings of the visual prompts (``PromptSettings``' fields, defaults and help)."""

    def settings(self) -> PromptSettings:
        return PromptSettings(**self.settings_values())


def _prepare_scene_task(raw_dir: str, out_dir: str, settings: PromptSettings, stages: tuple[str, ...]) -> SceneResult:
    """The Ray task of one scene: ``prepare_scene``, with the ID of the Ray node it ran on."""
    return on_this_node(prepare_scene(raw_dir, out_dir, settings, stages))


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            stage,
            deps=_UPSTREAM[stage],
            description=_DESCRIPTIONS[stage],
            skippable=True,
            code_version=CODE_VERSIONS[stage],
            partitions_def=scene_partitions,
            kinds={"ray", "numpy"},
            group_name="visual_prompts",
        )
        for stage in STAGES
    ],
    check_specs=[dg.AssetCheckSpec(name, asset=stage) for name, stage in CHECK_STAGES.items()],
    partitions_def=scene_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=True,
)
def visual_prompts(
    context: dg.AssetExecutionContext, config: VisualPromptsConfig, storage: StorageRoot, ray_cluster: RayResource
):
    """GPT4Scene's visual prompts for every scene partition in the run, one Ray task per scene."""
    import ray

    stages = tuple(stage for stage in STAGES if dg.AssetKey(stage) in context.selected_asset_keys)
    settings = config.settings()
    task = ray.remote(num_cpus=1, max_retries=2)(_prepare_scene_task)
    started = time.perf_counter()
    folders, failures = partition_folders(
        context.partition_keys, lambda scene_id: (storage.raw_scene_dir(scene_id), storage.scene(scene_id).dir)
    )
    for scene_id, reason in failures.items():
        context.log.error(f"scene {scene_id!r} refused: {reason}")
    pending = {}
    for raw_dir in largest_first(list(folders)):
        scene_id, out_dir = folders[raw_dir]
        pending[task.remote(raw_dir, out_dir, settings, stages)] = scene_id
    context.log.info(f"submitted {len(pending)} scenes to Ray for {', '.join(stages)}")
    for result in finished_results(context, pending, failures, "scene"):
        yield from partition_events(result, stages, dg.AssetKey, storage.scene(result.scene_id).stage_dirs)
    context.log.info(
        f"{len(context.partition_keys) - len(failures)} scenes done in {time.perf_counter() - started:.1f} s"
    )
    if failures:
        raise partitions_failed(failures, len(context.partition_keys), "scene")
