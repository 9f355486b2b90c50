"""The one Definitions object of the gpt4scene code location."""

from __future__ import annotations

import dagster as dg

from assets.ask import ask_answer
from assets.captures import capture_prompts
from assets.dataset import DATASET_ASSETS, DATASET_CHECKS
from assets.evaluation import EVALUATION_ASSETS
from assets.experiments import experiment_recipe
from assets.leaderboard import leaderboard
from assets.partitions import scene_partitions
from assets.raw_scans import raw_scan
from assets.raw_scenes import scene_manifest, synthetic_scenes
from assets.training import base_model, checkpoint
from assets.visual_prompts import visual_prompts
from pipelines.captures import capture_discovery_sensor, capture_job
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


def _scene_job(name: str, asset: dg.AssetsDefinition, description: str) -> dg.UnresolvedAssetJobDefinition:
    """A job over scene partitions, tagged so `dagster.yaml` bounds how many run at once."""
    return dg.define_asset_job(
        name,
        selection=dg.AssetSelection.assets(asset),
        partitions_def=scene_partitions,
        description=description,
        tags={"gpt4scene/run_kind": "scenes"},
    )


scene_job = _scene_job("scene_job", scene_manifest, "Validate and summarise one scan (per scene partition).")
visual_prompts_job = _scene_job(
    "visual_prompts_job",
    visual_prompts,
    "Point cloud, instances, BEV and marked frames; one run covers one scene or a range, over Ray.",
)

samples_job = dg.define_asset_job(
    "samples_job",
    selection=dg.AssetSelection.assets(DATASET_ASSETS[0]),
    description="Task samples of every prepared scene (all scene partitions), every data variant asked for.",
)

dataset_job = dg.define_asset_job(
    "dataset_job",
    selection=dg.AssetSelection.assets(*DATASET_ASSETS[1:]),
    description="Training shards and eval set of one data variant (per variant partition), from the task samples.",
)

base_model_job = dg.define_asset_job(
    "base_model_job",
    selection=dg.AssetSelection.assets(base_model),
    description="The base model fine-tuning starts from (the configured folder, or the tiny random Qwen2-VL).",
)

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets(checkpoint),
    description="One experiment's fine-tuning (per experiment partition): the next checkpoint version, through "
    "torchrun/deepspeed via Pipes.",
)

evaluation_job = dg.define_asset_job(
    "evaluation_job",
    selection=dg.AssetSelection.assets(*EVALUATION_ASSETS),
    description="One experiment's predictions on the eval set of its data variant, then the five benchmarks' scores "
    "(per experiment partition).",
)

observe_experiment_recipes_job = dg.define_asset_job(
    "observe_experiment_recipes",
    selection=dg.AssetSelection.assets(experiment_recipe.key),
    description="Observe every experiment file: an edited recipe makes only its experiment's checkpoint stale.",
)

leaderboard_job = dg.define_asset_job(
    "leaderboard_job",
    selection=dg.AssetSelection.assets(leaderboard),
    description="Every experiment's latest scores with their lineage, beside GPT4Scene's published rows.",
)

defs = dg.Definitions(
    assets=[
        synthetic_scenes,
        raw_scan,
        experiment_recipe,
        *with_rebuild_conditions([scene_manifest, visual_prompts], DATASET_ASSETS),
        base_model,
        checkpoint,
        *EVALUATION_ASSETS,
        leaderboard,
        capture_prompts,
        ask_answer,
    ],
    asset_checks=DATASET_CHECKS,
    jobs=[
        scene_job,
        visual_prompts_job,
        samples_job,
        dataset_job,
        base_model_job,
        training_job,
        evaluation_job,
        leaderboard_job,
        observe_raw_scans_job,
        observe_experiment_recipes_job,
        capture_job,
    ],
    schedules=[dataset_rebuild_schedule],
    sensors=[scene_discovery_sensor, rebuild_sensor, capture_discovery_sensor],
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
