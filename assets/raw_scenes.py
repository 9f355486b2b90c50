"""Raw scans: the synthetic demo scenes, and the per-scene manifest of any ScanNet-layout scan."""

import time
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from assets.partition_runs import partitions_failed
from assets.partitions import scene_partitions
from assets.raw_scans import raw_scan
from ops.core.atomic import write_json
from ops.scannet.scene import open_scene
from ops.synthetic import generate_dataset
from resources.storage import StorageRoot


class SyntheticScenesConfig(dg.Config):
    """Size of the synthetic ScanNet-format demo data (defaults keep `make demo` short on 2 cores)."""

    n_scenes: int = Field(default=6, ge=1, le=500)
    seed: int = 0
    n_frames: int = Field(default=160, ge=8)
    color_width: int = 648
    color_height: int = 484
    depth_width: int = 320
    depth_height: int = 240


@dg.asset(kinds={"python", "scannet"}, group_name="raw")
def synthetic_scenes(config: SyntheticScenesConfig, storage: StorageRoot) -> dg.MaterializeResult:
    """Synthetic scans written in ScanNet's exact file formats, with benchmark annotations, under the raw root."""
    started = time.perf_counter()
    truth = generate_dataset(
        storage.raw_path,
        n_scenes=config.n_scenes,
        seed=config.seed,
        n_frames=config.n_frames,
        color_size=(config.color_width, config.color_height),
        depth_size=(config.depth_width, config.depth_height),
    )
    scene_ids = [scene.scene_id for scene in truth.scenes]
    return dg.MaterializeResult(
        metadata={
            "raw_root": dg.MetadataValue.path(str(storage.raw_path)),
            "scenes": dg.MetadataValue.json(scene_ids),
            "num_scenes": len(scene_ids),
            "seconds": round(time.perf_counter() - started, 2),
        }
    )


# Bump when what scene_manifest writes changes: the rebuild sensor then rebuilds every scene (pipelines/schedules.py).
SCENE_MANIFEST_CODE_VERSION = "1"


@dg.asset(
    partitions_def=scene_partitions,
    deps=[raw_scan],
    code_version=SCENE_MANIFEST_CODE_VERSION,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"python", "scannet"},
    group_name="raw",
)
def scene_manifest(context: dg.AssetExecutionContext, storage: StorageRoot) -> Iterator:
    """The inspect summary of each raw scan in the run (frames, intrinsics, alignment, objects), saved as
    `manifest.json`.

    One run covers one scene or a range (a backfill makes one run, `BackfillPolicy.single_run`, and the visual prompts
    of the same scenes can follow in that run). Each scene gets its own materialisation with its own metadata. A bad
    scene fails only itself: the others are recorded and the run then fails naming every bad scene."""
    metadata, failures = {}, {}
    for scene_id in context.partition_keys:
        try:
            metadata[scene_id] = _write_manifest(storage, scene_id)
        except Exception as exc:  # one bad scene fails only itself
            failures[scene_id] = f"{type(exc).__name__}: {exc}"
            context.log.error(f"scene {scene_id} failed: {failures[scene_id]}")
    if failures:
        for scene_id, values in metadata.items():
            yield dg.AssetMaterialization(
                context.asset_key,
                partition=scene_id,
                metadata=values,
                tags={"dagster/code_version": SCENE_MANIFEST_CODE_VERSION},
            )
        raise partitions_failed(failures, len(context.partition_keys), "scene")
    for scene_id, values in metadata.items():
        context.add_asset_metadata(values, partition_key=scene_id)
    yield dg.MaterializeResult()


def _write_manifest(storage: StorageRoot, scene_id: str) -> dict[str, object]:
    """Write one scene's `manifest.json`; its materialisation metadata."""
    with open_scene(storage.raw_scene_dir(scene_id)) as scene:
        summary = scene.summary()
    manifest = storage.scene(scene_id).manifest
    write_json(manifest, summary)
    return {  # the headline figures; the whole summary (intrinsics, alignment, labels) is the file, not event log
        "path": dg.MetadataValue.path(str(manifest)),
        "num_frames": summary["num_frames"],
        "num_valid_frames": summary["num_valid_frames"],
        "num_objects": summary["num_objects"],
        "num_vertices": summary["num_vertices"],
        "source": summary["source"],
    }
