"""Scene discovery: scan folders under the raw root become `scenes` partitions once they validate."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from assets.partitions import scene_partitions
from ops.scannet.scene import check_scene_dir
from pipelines.schedules import observe_raw_scans_job
from resources.storage import StorageRoot


@dataclass
class Discovery:
    """Valid scene ids (sorted) and invalid folders with their reasons."""

    valid: list[str] = field(default_factory=list)
    invalid: dict[str, list[str]] = field(default_factory=dict)


def discover_scenes(scans_dir: Path) -> Discovery:
    """Validate every folder under ``scans_dir``; hidden and temporary folders are ignored."""
    found = Discovery()
    if not scans_dir.is_dir():
        return found
    for entry in sorted(scans_dir.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        problems = check_scene_dir(entry)
        if problems:
            found.invalid[entry.name] = problems
        else:
            found.valid.append(entry.name)
    return found


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
