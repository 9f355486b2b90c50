"""`raw_scan`: the raw ScanNet-layout folder of each scene, observed (not built) so rebuilds see what changed.

An observable source asset partitioned by scene. One observation covers every registered scene and records a data
version per partition: the folder's fingerprint (``ops.core.fingerprint``). Dagster counts an observation as an update
only when that version changes, so the automation conditions downstream (pipelines/schedules.py) rebuild exactly
the scenes whose files changed.
"""

import dagster as dg

from assets.partitions import scene_partitions
from ops.core.errors import SceneInputError
from ops.core.fingerprint import folder_fingerprint
from resources.storage import StorageRoot


@dg.observable_source_asset(partitions_def=scene_partitions, group_name="raw", description=__doc__.split("\n\n")[0])
def raw_scan(context: dg.OpExecutionContext, storage: StorageRoot) -> dg.DataVersionsByPartition:
    """Fingerprint every registered scene's raw folder (ids are validated before any path is built)."""
    versions = {}
    for scene_id in context.instance.get_dynamic_partitions(scene_partitions.name):
        try:
            versions[scene_id] = folder_fingerprint(storage.raw_scene_dir(scene_id))
        except SceneInputError as exc:  # a hostile id registered by hand: report it, observe the others
            context.log.error(str(exc))
    context.log.info(f"observed {len(versions)} raw scans under {storage.scans_dir}")
    return dg.DataVersionsByPartition(versions)
