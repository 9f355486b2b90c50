"""The one Definitions object of the gpt4scene code location."""

from __future__ import annotations

import dagster as dg

from assets.dataset import DATASET_ASSETS, DATASET_CHECKS
from assets.partitions import scene_partitions
from assets.raw_scenes import scene_manifest, synthetic_scenes
from assets.visual_prompts import visual_prompts
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

defs = dg.Definitions(
    assets=[synthetic_scenes, scene_manifest, visual_prompts, *DATASET_ASSETS],
    asset_checks=DATASET_CHECKS,
    jobs=[scene_job, visual_prompts_job, dataset_job],
    sensors=[scene_discovery_sensor],
    resources={
        "storage": StorageRoot(
            root=dg.EnvVar("GPT4SCENE_ROOT"),
            raw_root=dg.EnvVar("GPT4SCENE_RAW_ROOT"),
            scans_root=dg.EnvVar("GPT4SCENE_SCANS_ROOT"),
        ),
        "ray_cluster": SceneRay(address=dg.EnvVar("GPT4SCENE_RAY_ADDRESS")),
    },
)
