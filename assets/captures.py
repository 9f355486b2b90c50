"""Per-capture visual prompts: `capture/point_cloud`, `capture/instance_masks`, `capture/bev_image`,
`capture/marked_frames`, partitioned by capture and fanned out over Ray like the scenes' (assets/visual_prompts.py).

A capture is a posed RGB-D video without annotation under ``<raw root>/captures/<name>/`` (``ops.capture``); every
capture of a run is one Ray task running ``ops.capture.prepare_capture``, which writes ``<root>/captures/<name>/``
in the scenes' layout (plus ``pointcloud/alignment.json``). One bad capture fails only itself.
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
from assets.partitions import capture_partitions
from ops.capture import CaptureSettings, prepare_capture
from ops.prompts.driver import STAGES, SceneResult
from resources.config import settings_config
from resources.storage import StorageRoot

CAPTURE_PREFIX = "capture"
_DESCRIPTIONS = {
    "point_cloud": "TSDF-fused point cloud, turned to +Z up with the floor at z = 0: pointcloud/ (+ alignment.json).",
    "instance_masks": "Class-agnostic proposals (clusters, or imported): instances/ (object ID k = row k).",
    "bev_image": "Top-down BEV image with object-ID markers: bev/bev.png, bev/bev.json.",
    "marked_frames": "Sampled frames with object-ID markers: frames/frame_XX.jpg, raw_XX.jpg, frames.json.",
}
_UPSTREAM = {"instance_masks": ["point_cloud"], "bev_image": ["point_cloud", "instance_masks"]}
_UPSTREAM["marked_frames"] = _UPSTREAM["bev_image"]


def capture_key(stage: str) -> dg.AssetKey:
    """``capture/<stage>``: the asset key of one stage of the capture prompts."""
    return dg.AssetKey([CAPTURE_PREFIX, stage])


class CapturePromptsConfig(settings_config(CaptureSettings)):
    """Launchpad settings of a capture's visual prompts (``CaptureSettings``' fields, defaults and help)."""

    def settings(self) -> CaptureSettings:
        return CaptureSettings(**self.settings_values())


def _prepare_capture_task(
    raw_dir: str, out_dir: str, settings: CaptureSettings, stages: tuple[str, ...]
) -> SceneResult:
    """The Ray task of one capture: ``prepare_capture``, with the ID of the Ray node it ran on."""
    return on_this_node(prepare_capture(raw_dir, out_dir, settings, stages))


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            capture_key(stage),
            deps=[capture_key(upstream) for upstream in _UPSTREAM.get(stage, [])],
            description=_DESCRIPTIONS[stage],
            skippable=True,
            partitions_def=capture_partitions,
            kinds={"ray", "numpy"},
            group_name="captures",
        )
        for stage in STAGES
    ],
    check_specs=[dg.AssetCheckSpec(name, asset=capture_key(stage)) for name, stage in CHECK_STAGES.items()],
    partitions_def=capture_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=True,
)
def capture_prompts(
    context: dg.AssetExecutionContext, config: CapturePromptsConfig, storage: StorageRoot, ray_cluster: RayResource
):
    """GPT4Scene's visual prompts for every capture partition in the run, one Ray task per capture."""
    import ray

    stages = tuple(stage for stage in STAGES if capture_key(stage) in context.selected_asset_keys)
    task = ray.remote(num_cpus=1, max_retries=2)(_prepare_capture_task)
    started = time.perf_counter()
    folders, failures = partition_folders(
        context.partition_keys, lambda name: (storage.raw_capture_dir(name), storage.capture(name).dir)
    )
    settings = config.settings()
    pending = {task.remote(raw_dir, out_dir, settings, stages): name for raw_dir, (name, out_dir) in folders.items()}
    for result in finished_results(context, pending, failures, "capture"):
        yield from partition_events(result, stages, capture_key, storage.capture(result.scene_id).stage_dirs)
    context.log.info(f"{len(context.partition_keys) - len(failures)} captures in {time.perf_counter() - started:.1f} s")
    if failures:
        raise partitions_failed(failures, len(context.partition_keys), "capture")
