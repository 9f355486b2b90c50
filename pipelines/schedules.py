"""Scheduled, incremental rebuilds: only scenes whose raw files or code changed are rebuilt, then the dataset.

How a rebuild flows (Declarative Automation, evaluated by the daemon):

1. `dataset_rebuild_schedule` (nightly) runs `observe_raw_scans`: one observation of `raw_scan` records every
   scene folder's fingerprint as that partition's data version. The scene discovery sensor requests the same
   observation whenever it registers new scenes.
2. `rebuild_sensor` evaluates `SCENE_REBUILD` on the per-scene assets: a partition is requested when it is missing,
   its upstream partition updated (an observation counts only if the data version changed), or the asset's
   `code_version` changed. Requests for many scenes become one backfill: the per-scene assets share the single-run
   backfill policy, so one run per contiguous range writes the scenes' manifests and then their visual prompts (Ray).
3. `DATASET_REBUILD` on the dataset assets waits until no per-scene asset is requested or running, then rebuilds
   the samples once; the shard and eval sets (partitioned by data variant) then follow in the variants already
   built (`VARIANT_REBUILD`). A failed scene does not block it: the dataset
   assets use every prepared scene and report the rest.
"""

from __future__ import annotations

import dagster as dg

from assets.raw_scans import raw_scan

REBUILD_CRON = "0 3 * * *"
AC = dg.AutomationCondition

SCENE_REBUILD = (
    (AC.missing() | AC.any_deps_updated() | AC.code_version_changed()).since_last_handled()
    & ~AC.any_deps_missing()
    & ~AC.any_deps_in_progress()
    & ~AC.in_progress()
).with_label("scene_rebuild")

# The per-scene assets (groups of assets/raw_scenes.py, assets/raw_scans.py and assets/visual_prompts.py).
PER_SCENE = dg.AssetSelection.groups("raw", "visual_prompts")
DATASET_REBUILD = (
    (AC.any_deps_updated() | AC.code_version_changed()).since_last_handled()
    & ~AC.any_deps_match(AC.will_be_requested() | AC.in_progress()).allow(PER_SCENE).with_label("scenes_pending")
    & ~AC.in_progress()
).with_label("dataset_rebuild")

# The shard sets and eval sets (one partition per data variant) follow the samples only in the variants already
# built: which variants a user trains on is a choice (a variant the samples lack cannot be sharded), so the first
# build of a variant is by hand (dataset_job, or the demo) and from then on it is kept fresh.
VARIANT_REBUILD = (DATASET_REBUILD & ~AC.missing()).with_label("dataset_rebuild")

observe_raw_scans_job = dg.define_asset_job(
    "observe_raw_scans",
    selection=dg.AssetSelection.assets(raw_scan.key),
    description="Fingerprint every registered scene's raw folder; changed scenes are then rebuilt by rebuild_sensor.",
)

dataset_rebuild_schedule = dg.ScheduleDefinition(
    name="dataset_rebuild_schedule",
    job=observe_raw_scans_job,
    cron_schedule=REBUILD_CRON,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly: look for new or changed scans; rebuild_sensor then recomputes only those, then the dataset.",
)


def with_rebuild_conditions(scene_assets: list, dataset_assets: list) -> list:
    """The assets with the rebuild conditions attached (the asset modules stay unaware of scheduling)."""
    return [
        *dg.map_asset_specs(lambda spec: spec.replace_attributes(automation_condition=SCENE_REBUILD), scene_assets),
        *dg.map_asset_specs(
            lambda spec: spec.replace_attributes(
                automation_condition=VARIANT_REBUILD if spec.partitions_def is not None else DATASET_REBUILD
            ),
            dataset_assets,
        ),
    ]


# Evaluates the conditions every minute; requests for more than one scene become one backfill.
rebuild_sensor = dg.AutomationConditionSensorDefinition(
    "rebuild_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    run_tags={"gpt4scene/trigger": "rebuild"},
    description="Rebuilds new or changed scenes (raw data version or code version) and then the dataset.",
)
