"""The `scenes` dynamic partitions: one key per scan, added by the discovery sensor.

Defined here rather than in pipelines/ because every per-scene asset needs it at definition time and assets/ must
not import pipelines/ (pipelines → assets → ops).
"""

import dagster as dg

scene_partitions = dg.DynamicPartitionsDefinition(name="scenes")
capture_partitions = dg.DynamicPartitionsDefinition(name="captures")  # posed RGB-D videos without annotation


def partition_range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run cover the scenes ``first..last`` (in registration order), as a backfill does."""
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
