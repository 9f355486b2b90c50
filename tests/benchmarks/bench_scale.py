"""``make bench-scale``: the orchestration at ScanNet size, through a real Dagster instance (not a test).

One synthetic scene is generated and cloned into N scene folders with hard links (disk use stays small), with
benchmark annotations for every clone. Then, through the project's definitions and an instance on PostgreSQL when
``GPT4SCENE_PG_URL`` is set (SQLite otherwise): the scene sensor's registration, the ``raw_scan`` observation, one
tick of the rebuild automation, the scene manifests and the visual-prompts backfill over Ray (one run each for all
partitions, as the rebuild's backfill makes with the single-run policy; the backfill puts both in one run, timed
apart here), the dataset build, and one changed scene rebuilt incrementally (observation, automation tick and the
run the daemon would launch). Prints each stage's wall time, the event-log bytes a scene, the orchestration overhead
of the backfill, the peak RSS of the run worker (this process) and the time of the GraphQL query behind the
``bev_image`` asset page, each next to its goal.

``--subset-planned-events`` sets Dagster's ``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS``: a run over many
partitions then logs one "planned" event an asset instead of one a partition (about 12 ms each on SQLite or
PostgreSQL), at the cost Dagster names: the partitions of a failed multi-partition run are not marked failed.

    python tests/benchmarks/bench_scale.py [--scenes 1513] [--scannet-size] [--subset-planned-events]
                                           [--workdir DIR] [--raw EARLIER_WORKDIR/raw]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_DIR))

GOALS = {
    "visual_prompts_backfill": "< 600 s for 1,513 ScanNet-size scenes, 32 frames, 2 cores",
    "overhead": "<= 10% of compute",
    "event_log": "<= 30 KB a scene a rebuild",
    "incremental": "<= 60 s end to end with 1,513 partitions",
    "graphql": "<= 2 s",
}
STAGE_KEYS = ("point_cloud", "instance_masks", "bev_image", "marked_frames")
ASSET_PAGE_QUERY = """
query AssetPage($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      id
      partitionKeysByDimension { name partitionKeys }
      assetPartitionStatuses {
        ... on DefaultPartitionStatuses { materializedPartitions failedPartitions materializingPartitions }
      }
      assetMaterializations(limit: 1) { runId timestamp partition metadataEntries { label } }
    }
  }
}
"""


def clone_scenes(raw: Path, count: int, scannet_size: bool, seed: int = 11) -> list[str]:
    """One generated scene and ``count - 1`` hard-linked clones under ``raw/scans``, annotations for all."""
    from ops.synthetic.annotations import write_annotations
    from ops.synthetic.generate import generate_scene

    frames, color, depth = (2000, (1296, 968), (640, 480)) if scannet_size else (60, (648, 484), (320, 240))
    source_id = "scene0000_00"
    truth = generate_scene(raw / "scans", source_id, seed, n_frames=frames, color_size=color, depth_size=depth)
    source = raw / "scans" / source_id
    truths = [truth]
    for index in range(1, count):
        scene_id = f"scene{index:04d}_00"
        folder = raw / "scans" / scene_id
        folder.mkdir()
        for path in source.iterdir():
            os.link(path, folder / path.name.replace(source_id, scene_id))
        truths.append(dataclasses.replace(truth, scene_id=scene_id, scene_dir=folder))
    scene_ids = [t.scene_id for t in truths]
    n_val = max(1, count // 4) if count > 1 else 0
    write_annotations(raw / "annotations", truths, scene_ids[n_val:] or scene_ids, scene_ids[:n_val], seed)
    return scene_ids


def event_log_bytes(instance, run_ids: list[str]) -> int:
    """Serialized size of every event of ``run_ids``, as the event log stores them."""
    from dagster._serdes import serialize_value

    return sum(len(serialize_value(entry)) for run_id in run_ids for entry in instance.all_logs(run_id))


class Report:
    """Stage rows: wall seconds and event-log bytes a scene."""

    def __init__(self, scenes: int):
        self.scenes = scenes
        self.rows: list[tuple[str, float, str]] = []

    def add(self, stage: str, seconds: float, log_bytes: int | None = None, note: str = "", scenes: int = 0) -> None:
        """One stage; ``log_bytes`` are divided by ``scenes`` (default: all of them)."""
        per_scene = f"{log_bytes / (scenes or self.scenes) / 1024:.1f} KB" if log_bytes is not None else "-"
        self.rows.append((stage, seconds, f"{per_scene:>10}  {note}"))
        print(f"  {stage:<28} {seconds:8.1f} s  event log/scene {per_scene:>10}  {note}", flush=True)


def run_job(defs, instance, name: str, **kwargs):
    result = defs.resolve_job_def(name).execute_in_process(instance=instance, raise_on_error=False, **kwargs)
    if not result.success:
        raise SystemExit(f"{name} failed")
    return result


def automation_tick(defs, instance, cursor=None):
    """One evaluation of the rebuild automation: {asset: requested partitions} and the next cursor."""
    import dagster as dg

    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    requested = {key: result.get_requested_partitions(key) for key in keys if result.get_num_requested(key)}
    return requested, result.cursor


def execute_requests(defs, instance, requested, prompts: dict) -> list[str]:
    """Run what the tick requested, as the daemon would: one run of the per-scene assets over the requested scenes
    (they share the single-run backfill policy), then the samples. Returns the run IDs."""
    import dagster as dg

    from assets.partitions import partition_range_tags, scene_partitions

    runs = []
    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()
    scene_keys = [key for key in requested if graph.get(key).partitions_def == scene_partitions]
    if scene_keys:
        order = instance.get_dynamic_partitions("scenes")
        scenes = sorted({p for key in scene_keys for p in requested[key]}, key=order.index)
        config = {"ops": {"visual_prompts": prompts}} if any(k.path[0] in STAGE_KEYS for k in scene_keys) else None
        result = job.execute_in_process(
            instance=instance,
            asset_selection=scene_keys,
            tags=partition_range_tags(scenes[0], scenes[-1]),
            run_config=config,
            raise_on_error=False,
        )
        if not result.success:
            raise SystemExit("per-scene run failed")
        runs.append(result)
    if dg.AssetKey("task_samples") in requested:
        runs.append(run_job(defs, instance, "samples_job"))
    return [run.run_id for run in runs]


def standalone_scene_seconds(raw_scene_dir: Path, n_frames: int, repeats: int = 3) -> float:
    """Median seconds of ``prepare_scene`` on one scene alone (a fresh process with the Ray workers' environment, a
    temp output folder): the compute a scene needs when nothing else competes for the cores."""
    import json
    import subprocess

    from resources.ray import WORKER_ENV

    code = (
        "import json, sys, tempfile, time\n"
        "from ops.prompts.driver import PromptSettings, prepare_scene\n"
        "times = []\n"
        f"for _ in range({repeats}):\n"
        "    with tempfile.TemporaryDirectory() as out:\n"
        f"        result = prepare_scene(sys.argv[1], out, PromptSettings(n_frames={n_frames}))\n"
        "    times.append(sum(result.seconds.values()))\n"
        "print(json.dumps(sorted(times)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(raw_scene_dir)],
        env={**os.environ, **WORKER_ENV},
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    times = json.loads(done.stdout.strip().splitlines()[-1])
    return times[len(times) // 2]


def graphql_seconds(instance) -> float | None:
    """Time of the asset page's query for ``bev_image`` through the webserver's GraphQL schema, or None."""
    try:
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import ModuleTarget
        from dagster_graphql.test.utils import execute_dagster_graphql
    except ImportError as exc:
        print(f"  GraphQL not measured: {exc}")
        return None
    target = ModuleTarget(
        module_name="pipelines.definitions",
        attribute=None,
        working_directory=str(PROJECT_DIR),
        location_name="gpt4scene",
    )
    with WorkspaceProcessContext(instance, target) as process_context:
        context = process_context.create_request_context()
        started = time.perf_counter()
        result = execute_dagster_graphql(context, ASSET_PAGE_QUERY, {"key": {"path": ["bev_image"]}})
        seconds = time.perf_counter() - started
    node = (result.data or {}).get("assetNodeOrError") or {}
    statuses = node.get("assetPartitionStatuses") or {}
    print(f"  GraphQL: {len(statuses.get('materializedPartitions') or [])} materialised partitions listed")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=1513, help="scene partitions (ScanNet: 1,513)")
    parser.add_argument("--scannet-size", action="store_true", help="2,000 frames a scene, 32 sampled")
    parser.add_argument(
        "--subset-planned-events",
        action="store_true",
        help="one planned event an asset for a multi-partition run (failed runs' partitions are not marked failed)",
    )
    parser.add_argument("--workdir", default="", help="work folder (default: a temp folder, removed afterwards)")
    parser.add_argument("--raw", default="", help="reuse the raw folder (scans, annotations) of an earlier --workdir")
    args = parser.parse_args()
    if args.subset_planned_events:
        os.environ["DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"] = "1"
    work = Path(args.workdir or tempfile.mkdtemp(prefix="g4s-scale-", dir="/tmp"))
    home = work / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_DIR / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    raw = Path(args.raw).resolve() if args.raw else work / "raw"
    os.environ.update(DAGSTER_HOME=str(home), GPT4SCENE_ROOT=str(work / "data"), GPT4SCENE_RAW_ROOT=str(raw))
    from resources.environment import apply_defaults

    apply_defaults()
    import dagster as dg

    from assets.partitions import partition_range_tags
    from pipelines.definitions import defs
    from resources.storage import StorageRoot

    n_frames = 32 if args.scannet_size else 8
    prompts = {"config": {"n_frames": n_frames}}
    report = Report(args.scenes)
    started = time.perf_counter()
    if args.raw:
        scene_ids = sorted(path.name for path in (raw / "scans").iterdir())
        if len(scene_ids) != args.scenes:
            raise SystemExit(f"{raw} holds {len(scene_ids)} scenes, not {args.scenes}")
    else:
        scene_ids = clone_scenes(raw, args.scenes, args.scannet_size)
    storage_kind = "PostgreSQL" if os.environ.get("GPT4SCENE_PG_URL") else "SQLite"
    planned = "one an asset" if args.subset_planned_events else "one a partition"
    print(
        f"{args.scenes} scenes cloned in {time.perf_counter() - started:.1f} s under {work}; "
        f"instance on {storage_kind}; planned events: {planned}"
    )

    with dg.DagsterInstance.get() as instance:
        sensor = defs.get_sensor_def("scene_discovery_sensor")
        started = time.perf_counter()
        storage = StorageRoot(root=str(work / "data"), raw_root=str(raw))
        with dg.build_sensor_context(instance=instance, resources={"storage": storage}) as context:
            result = sensor(context)
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        report.add("registration (sensor)", time.perf_counter() - started, note=f"{len(scene_ids)} partitions")

        _, cursor = automation_tick(defs, instance)  # the daemon's first tick: an initial evaluation requests nothing

        started = time.perf_counter()
        observed = run_job(defs, instance, "observe_raw_scans")
        observation_bytes = event_log_bytes(instance, [observed.run_id])
        report.add("raw_scan observation", time.perf_counter() - started, observation_bytes)

        started = time.perf_counter()
        requested, cursor = automation_tick(defs, instance, cursor)
        note = ", ".join(f"{key.to_user_string()}: {len(parts)}" for key, parts in requested.items())
        report.add("rebuild sensor tick", time.perf_counter() - started, note=f"requested {note}")

        started = time.perf_counter()
        range_tags = partition_range_tags(scene_ids[0], scene_ids[-1])
        manifests = run_job(defs, instance, "scene_job", tags=range_tags)
        manifest_bytes = event_log_bytes(instance, [manifests.run_id])
        report.add("scene_manifest (one run)", time.perf_counter() - started, manifest_bytes)

        alone = standalone_scene_seconds(raw / "scans" / scene_ids[0], n_frames)
        started = time.perf_counter()
        backfill = defs.resolve_job_def("visual_prompts_job").execute_in_process(
            instance=instance,
            tags=range_tags,
            run_config={"ops": {"visual_prompts": prompts}},
            raise_on_error=False,
        )
        wall = time.perf_counter() - started
        task_seconds = sum(
            event.event_specific_data.materialization.metadata["seconds"].value
            for event in backfill.get_asset_materialization_events()
        )
        ray_cpus = 2
        overhead = max(wall - task_seconds / ray_cpus, 0.0)
        share = overhead / max(wall - overhead, 1e-9) * 100
        # The same against a scene's compute alone: also counts the CPU that the run worker, the event log's
        # database and Ray's own processes take from the two workers (which stretches the Ray task time above).
        overhead_alone = max(wall - alone * args.scenes / ray_cpus, 0.0)
        share_alone = overhead_alone / (alone * args.scenes / ray_cpus) * 100
        backfill_bytes = event_log_bytes(instance, [backfill.run_id])
        report.add(
            "visual prompts backfill",
            wall,
            backfill_bytes,
            f"success={backfill.success}; Ray task time {task_seconds:.1f} s over {ray_cpus} CPUs; overhead "
            f"{overhead / args.scenes * 1000:.1f} ms/scene = {share:.1f}% of compute (goal {GOALS['overhead']}); "
            f"against {alone:.3f} s a scene alone: {overhead_alone / args.scenes * 1000:.1f} ms/scene = "
            f"{share_alone:.1f}%; goal {GOALS['visual_prompts_backfill']}; event log goal {GOALS['event_log']}",
        )

        started = time.perf_counter()
        samples = run_job(defs, instance, "samples_job")
        dataset = run_job(defs, instance, "dataset_job", partition_key="marked")
        dataset_bytes = event_log_bytes(instance, [samples.run_id, dataset.run_id])
        report.add("dataset build (marked)", time.perf_counter() - started, dataset_bytes)
        rebuild_bytes = observation_bytes + manifest_bytes + backfill_bytes + dataset_bytes
        report.add(
            "whole rebuild (4 runs above)",
            0.0,
            rebuild_bytes,
            "observation, manifests, visual prompts, dataset: the event log a full rebuild adds",
        )

        started = time.perf_counter()
        requested, cursor = automation_tick(defs, instance, cursor)  # a tick sees the build done
        note = ", ".join(f"{key.to_user_string()}: {len(parts)}" for key, parts in requested.items()) or "nothing"
        report.add("tick after the build", time.perf_counter() - started, note=f"requested {note}")

        changed = raw / "scans" / scene_ids[-1]
        sens = next(changed.glob("*.sens"))
        shutil.copy2(sens, sens.with_suffix(".tmp"))  # its own inode: the other clones keep their fingerprint
        os.replace(sens.with_suffix(".tmp"), sens)
        os.utime(sens, (time.time(), time.time() + 5))
        started = time.perf_counter()
        run_job(defs, instance, "observe_raw_scans")
        requested, cursor = automation_tick(defs, instance, cursor)
        incremental = execute_requests(defs, instance, requested, prompts)
        note = ", ".join(f"{key.to_user_string()}: {sorted(map(str, parts))[:3]}" for key, parts in requested.items())
        report.add(
            "incremental (1 changed)",
            time.perf_counter() - started,
            event_log_bytes(instance, incremental),
            f"requested {note}; goal {GOALS['incremental']}",
            scenes=1,
        )

        seconds = graphql_seconds(instance)
        if seconds is not None:
            report.add("bev_image page GraphQL", seconds, note=f"goal {GOALS['graphql']}")
    print(
        f"peak RSS of the run worker (this process): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    print("goals: " + "; ".join(f"{name}: {goal}" for name, goal in GOALS.items()))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
