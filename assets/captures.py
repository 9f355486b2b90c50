"""Per-capture visual prompts: `capture/point_cloud`, `capture/instance_masks`, `capture/bev_image`,
`capture/marked_frames`, partitioned by capture and fanned out over Ray like the scenes' (assets/visual_prompts.py).

A capture is a posed RGB-D video without annotation under ``<raw root>/captures/<name>/`` (``ops.capture``); every
capture of a run is one Ray task running ``ops.capture.prepare_capture``, which writes ``<root>/captures/<name>/``
in the scenes' layout (plus ``pointcloud/alignment.json``). One bad capture fails only itself.
"""

import base64
import time

import dagster as dg
from dagster_ray import RayResource

from assets.partitions import capture_partitions
from ops.capture import CaptureSettings, prepare_capture
from ops.core.errors import SceneInputError
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
_CHECKS = {"bev_not_blank": "bev_image", "frames_distinct": "marked_frames", "markers_complete": "marked_frames"}


def capture_key(stage: str) -> dg.AssetKey:
    """``capture/<stage>``: the asset key of one stage of the capture prompts."""
    return dg.AssetKey([CAPTURE_PREFIX, stage])


class CapturePromptsConfig(settings_config(CaptureSettings)):
    """Launchpad settings of a capture's visual prompts (``CaptureSettings``' fields, defaults and help)."""

    def settings(self) -> CaptureSettings:
        return CaptureSettings(**self.settings_values())


def _prepare_capture_task(raw_dir: str, out_dir: str, settings: CaptureSettings, stages: tuple[str, ...]):
    return prepare_capture(raw_dir, out_dir, settings, stages)


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
    check_specs=[dg.AssetCheckSpec(name, asset=capture_key(stage)) for name, stage in _CHECKS.items()],
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
    failures: dict[str, str] = {}
    pending = {}
    for name in context.partition_keys:
        try:  # a hostile partition key fails alone, before any path exists
            raw_dir, out_dir = storage.raw_capture_dir(name), storage.capture(name).dir
        except SceneInputError as exc:
            failures[name] = str(exc)
            continue
        pending[task.remote(str(raw_dir), str(out_dir), config.settings(), stages)] = name
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        name = pending.pop(done[0])
        try:
            result: SceneResult = ray.get(done[0])
        except Exception as exc:  # one bad capture fails only itself
            cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the task's own exception
            failures[name] = f"{type(cause).__name__}: {cause}"
            context.log.error(f"capture {name} failed: {failures[name]}")
            continue
        yield from _capture_events(storage, result, stages)
    context.log.info(f"{len(context.partition_keys) - len(failures)} captures in {time.perf_counter() - started:.1f} s")
    if failures:
        raise dg.Failure(
            description=f"{len(failures)} of {len(context.partition_keys)} captures failed: "
            + "; ".join(f"{name}: {reason}" for name, reason in sorted(failures.items())),
            metadata={"failed_captures": dg.MetadataValue.json(failures)},
        )


def _capture_events(storage: StorageRoot, result: SceneResult, stages: tuple[str, ...]):
    stage_dirs = storage.capture(result.scene_id).stage_dirs
    for stage in stages:
        metadata: dict[str, object] = {
            "path": dg.MetadataValue.path(str(stage_dirs[stage])),
            "seconds": result.seconds.get(stage, 0.0),
        }
        for key, value in result.stages.get(stage, {}).items():
            metadata[key] = dg.MetadataValue.json(value) if isinstance(value, (list, dict)) else value
        if stage == "bev_image" and "bev" in result.previews:
            preview = base64.b64encode(result.previews["bev"]).decode("ascii")
            metadata["preview"] = dg.MetadataValue.md(f"![BEV](data:image/jpeg;base64,{preview})")
        yield dg.AssetMaterialization(capture_key(stage), partition=result.scene_id, metadata=metadata)
    for name, outcome in result.checks.items():
        yield dg.AssetCheckEvaluation(
            asset_key=capture_key(_CHECKS[name]),
            check_name=name,
            passed=bool(outcome["passed"]),
            partition=result.scene_id,
            metadata={
                key: dg.MetadataValue.json(value) if isinstance(value, (list, dict)) else value
                for key, value in outcome.items()
                if key != "passed"
            },
        )
