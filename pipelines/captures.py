"""Captures: capture folders under the raw root become `captures` partitions once they validate, and are built."""

from __future__ import annotations

import dagster as dg

from assets.captures import capture_prompts
from assets.partitions import capture_partitions
from ops.capture.readers import discover_captures
from resources.storage import StorageRoot

capture_job = dg.define_asset_job(
    "capture_job",
    selection=dg.AssetSelection.assets(capture_prompts),
    partitions_def=capture_partitions,
    description="A capture's point cloud, proposals, BEV and marked frames (per capture partition), over Ray.",
    tags={"gpt4scene/run_kind": "scenes"},
)


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING, job=capture_job)
def capture_discovery_sensor(context: dg.SensorEvaluationContext, storage: StorageRoot) -> dg.SensorResult:
    """Add new valid capture folders (``<raw root>/captures/<name>/``, names validated like scene IDs) as `captures`
    partitions and build their visual prompts; log every invalid folder with its reasons."""
    valid, invalid = discover_captures(storage.captures_dir)
    for name, problems in invalid.items():
        context.log.warning(f"invalid capture folder {name!r}: " + "; ".join(problems))
    known = set(context.instance.get_dynamic_partitions(capture_partitions.name))
    new = [name for name in valid if name not in known]
    if not new:
        return dg.SensorResult(skip_reason=f"no new captures ({len(valid)} valid under {storage.captures_dir})")
    context.log.info(f"adding {len(new)} capture partitions: {', '.join(new)}")
    return dg.SensorResult(
        dynamic_partitions_requests=[capture_partitions.build_add_request(new)],
        run_requests=[dg.RunRequest(partition_key=name) for name in new],
    )
