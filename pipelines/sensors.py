"""Scene discovery: scan folders under the raw root become `scenes` partitions once they validate."""

from __future__ import annotations

import dagster as dg

from assets.partitions import scene_partitions
from ops.scannet.scene import discover_scenes
from pipelines.schedules import observe_raw_scans_job
from resources.storage import StorageRoot


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING, job=observe_raw_scans_job)
def scene_discovery_sensor(context: dg.SensorEvaluationContext, storage: StorageRoot) -> dg.SensorResult:
    """Add new valid scans as `scenes` partitions and request their observation (rebuild_sensor then builds
    them); log every invalid folder with its reasons."""
    found = discover_scenes(storage.scans_dir)
    for name, problems in found.invalid.items():
        context.log.warning(f"invalid scene folder {name!r}: " + "; ".join(problems))
    known = set(context.instance.get_dynamic_partitions(scene_partitions.name))
    new = [scene_id for scene_id in found.valid if scene_id not in known]
    if not new:
        return dg.SensorResult(
            skip_reason=(
                f"no new scenes ({len(found.valid)} valid, {len(found.invalid)} invalid under {storage.scans_dir})"
            )
        )
    context.log.info(f"adding {len(new)} scene partitions: {', '.join(new)}")
    return dg.SensorResult(
        dynamic_partitions_requests=[scene_partitions.build_add_request(new)],
        run_requests=[dg.RunRequest()],  # observe_raw_scans: fingerprints the new scenes
    )
