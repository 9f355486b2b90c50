"""The one Definitions object of the gpt4scene code location."""

from __future__ import annotations

import dagster as dg

from assets.dataset import DATASET_ASSETS, DATASET_CHECKS
from assets.evaluation import EVALUATION_ASSETS
from assets.partitions import scene_partitions
from assets.raw_scans import raw_scan
from assets.raw_scenes import scene_manifest, synthetic_scenes
from assets.visual_prompts import visual_prompts
from pipelines.schedules import (
    dataset_rebuild_schedule,
    observe_raw_scans_job,
    rebuild_sensor,
    with_rebuild_conditions,
)
from pipelines.sensors import scene_discovery_sensor
from resources.ray import SceneRay
from resources.storage import StorageRoot

scene_job = dg.define_asset_job(
    "scene_job",
    selection=dg.AssetSelection.assets(scene_manifest),
    partitions_def=scene_partitions,
    description="Validate and summarise one scan (per scene partition).",
    tags={"gpt4scene/run_kind": "scenes"},
)

visual_prompts_job = dg.define_asset_job(
    "visual_prompts_job",
    selection=dg.AssetSelection.assets(visual_prompts),
    partitions_def=scene_partitions,
    description="Point cloud, instances, BEV and marked frames; one run covers one scene or a range, over Ray.",
    tags={"gpt4scene/run_kind": "scenes"},
)

dataset_job = dg.define_asset_job(
    "dataset_job",
    selection=dg.AssetSelection.assets(*DATASET_ASSETS),
    description="Samples, training shards and eval sets over every prepared scene (all scene partitions).",
)

evaluation_job = dg.define_asset_job(
    "evaluation_job",
    selection=dg.AssetSelection.assets(*EVALUATION_ASSETS),
    description="Predictions of the checkpoint (every eval-set variant) and the base model, then the five benchmarks' scores.",
)

defs = dg.Definitions(
    assets=[
        synthetic_scenes,
        raw_scan,
        *with_rebuild_conditions([scene_manifest, visual_prompts], DATASET_ASSETS),
        *EVALUATION_ASSETS,
    ],
    asset_checks=DATASET_CHECKS,
    jobs=[scene_job, visual_prompts_job, dataset_job, evaluation_job, observe_raw_scans_job],
    schedules=[dataset_rebuild_schedule],
    sensors=[scene_discovery_sensor, rebuild_sensor],
    resources={
        "storage": StorageRoot(
            root=dg.EnvVar("GPT4SCENE_ROOT"),
            raw_root=dg.EnvVar("GPT4SCENE_RAW_ROOT"),
            scans_root=dg.EnvVar("GPT4SCENE_SCANS_ROOT"),
        ),
        "ray_cluster": SceneRay(address=dg.EnvVar("GPT4SCENE_RAY_ADDRESS")),
    },
)
