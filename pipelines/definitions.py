"""The one Definitions object of the gpt4scene code location."""

from __future__ import annotations

import dagster as dg

from assets.dataset import DATASET_ASSETS, DATASET_CHECKS
from assets.evaluation import EVALUATION_ASSETS
from assets.partitions import scene_partitions
from assets.raw_scans import raw_scan
from assets.raw_scenes import scene_manifest, synthetic_scenes
from assets.training import base_model, checkpoint, checkpoint_checks
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
from resources.training import BaseModelSource, TrainingLauncher

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

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets(base_model, checkpoint),
    description="The base model, then its fine-tuning on the training shards (torchrun/deepspeed via Pipes).",
)

evaluation_job = dg.define_asset_job(
    "evaluation_job",
    selection=dg.AssetSelection.assets(*EVALUATION_ASSETS),
    description=(
        "Predictions of the checkpoint (every eval-set variant) and the base model, then the five benchmarks' scores."
    ),
)

defs = dg.Definitions(
    assets=[
        synthetic_scenes,
        raw_scan,
        *with_rebuild_conditions([scene_manifest, visual_prompts], DATASET_ASSETS),
        base_model,
        checkpoint,
        *EVALUATION_ASSETS,
    ],
    asset_checks=[*DATASET_CHECKS, *checkpoint_checks],
    jobs=[scene_job, visual_prompts_job, dataset_job, training_job, evaluation_job, observe_raw_scans_job],
    schedules=[dataset_rebuild_schedule],
    sensors=[scene_discovery_sensor, rebuild_sensor],
    resources={
        "storage": StorageRoot(
            root=dg.EnvVar("GPT4SCENE_ROOT"),
            raw_root=dg.EnvVar("GPT4SCENE_RAW_ROOT"),
            scans_root=dg.EnvVar("GPT4SCENE_SCANS_ROOT"),
        ),
        "ray_cluster": SceneRay(address=dg.EnvVar("GPT4SCENE_RAY_ADDRESS")),
        "base_model_source": BaseModelSource(model_dir=dg.EnvVar("GPT4SCENE_BASE_MODEL")),
        "training_launcher": TrainingLauncher(
            backend=dg.EnvVar("GPT4SCENE_TRAIN_BACKEND"),
            launcher=dg.EnvVar("GPT4SCENE_TRAIN_LAUNCHER"),
            ray_address=dg.EnvVar("GPT4SCENE_TRAIN_RAY_ADDRESS"),
        ),
    },
)
