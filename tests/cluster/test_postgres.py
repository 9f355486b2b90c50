"""The Dagster instance on PostgreSQL (``GPT4SCENE_PG_URL``): a real server from Debian's package, the project's
``dagster.yaml`` with a PostgreSQL storage block, per-scene runs over the test Ray cluster, and the lineage queries.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy

from assets.partitions import partition_range_tags, scene_partitions
from pipelines.cli.lineage import checkpoint_lineage, scene_lineage
from resources.environment import PG_URL_VARIABLE, PROJECT_DIR, apply_defaults, postgres_home

pytestmark = pytest.mark.slow

SCENES = {"n_scenes": 2, "seed": 7, "n_frames": 30, "color_width": 320, "color_height": 240}
SCENES.update(depth_width=160, depth_height=120)
DAGSTER = str(Path(sys.executable).parent / "dagster")
DAGSTER_DAEMON = str(Path(sys.executable).parent / "dagster-daemon")
QUEUE_TIMEOUT_S = 300
# The daemon and the launches run in the Dagster home, as `gpt4scene ui` does: from the project folder the dagster
# CLI would load .env over the environment (its empty GPT4SCENE_RAY_ADDRESS, relative GPT4SCENE_ROOT).
WORKSPACE = str(PROJECT_DIR / "workspace.yaml")
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture(scope="module")
def pg(postgres, ray_cluster, tmp_path_factory):
    """A Dagster home derived from the project's, on a fresh PostgreSQL database; the location's environment points
    at a temp storage root and the test Ray cluster. Yields the instance, the definitions and the scene IDs."""
    folder = tmp_path_factory.mktemp("pg_instance")
    shutil.copy(PROJECT_DIR / "dagster_home" / "dagster.yaml", folder / "dagster.yaml")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(PG_URL_VARIABLE, postgres.database_url("g4s_scenes"))
        env.setenv("DAGSTER_HOME", str(folder))
        env.setenv("GPT4SCENE_ROOT", str(folder / "data"))
        env.setenv("GPT4SCENE_RAW_ROOT", str(folder / "data" / "raw"))
        env.setenv("GPT4SCENE_RAY_ADDRESS", "auto")
        env.setenv("RAY_ADDRESS", ray_cluster.gcs_address)
        apply_defaults()
        from pipelines.definitions import defs

        with dg.DagsterInstance.get() as instance:
            assert (
                defs.resolve_job_def("__ASSET_JOB")
                .execute_in_process(
                    instance=instance,
                    asset_selection=[dg.AssetKey("synthetic_scenes")],
                    run_config={"ops": {"synthetic_scenes": {"config": SCENES}}, **QUIET},
                )
                .success
            )
            scene_ids = sorted(p.name for p in (folder / "data" / "raw" / "scans").iterdir())
            instance.add_dynamic_partitions(scene_partitions.name, scene_ids)
            yield instance, defs, scene_ids


def test_instance_is_on_postgres_only_with_the_url(pg, tmp_path, monkeypatch):
    instance, _, _ = pg
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PooledPostgresEventLogStorage"  # one connection kept open
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    assert instance.get_settings("concurrency")["runs"]["max_concurrent_runs"] == 4  # the project's run queue
    monkeypatch.delenv(PG_URL_VARIABLE)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    apply_defaults()
    with dg.DagsterInstance.get() as sqlite_instance:
        assert type(sqlite_instance.run_storage).__name__ == "SqliteRunStorage"
    assert postgres_home(tmp_path) == tmp_path / "postgres"


def test_the_event_log_keeps_its_connection_between_events(pg):
    """dagster-postgres alone opens a new connection (a new server backend) for every statement."""
    instance, _, _ = pg
    engine = instance.event_log_storage._engine

    def backend_pid() -> int:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text("select pg_backend_pid()")).scalar_one()

    first = backend_pid()
    for n in range(3):
        instance.report_runless_asset_event(dg.AssetMaterialization("pool_probe", metadata={"n": n}))
    assert backend_pid() == first
    assert instance.fetch_materializations(dg.AssetKey("pool_probe"), limit=5).records


def test_per_scene_runs_record_their_materialisations_in_postgres(pg):
    instance, defs, scene_ids = pg
    observed = defs.resolve_job_def("observe_raw_scans").execute_in_process(instance=instance, run_config=QUIET)
    assert observed.success
    for scene_id in scene_ids:
        run = defs.resolve_job_def("scene_job").execute_in_process(
            instance=instance, partition_key=scene_id, run_config=QUIET
        )
        assert run.success
    prompts = defs.resolve_job_def("visual_prompts_job").execute_in_process(
        instance=instance,
        tags=partition_range_tags(scene_ids[0], scene_ids[-1]),
        run_config={"ops": {"visual_prompts": {"config": {"n_frames": 8}}}, **QUIET},
    )
    assert prompts.success
    for key in ("scene_manifest", "point_cloud", "bev_image", "marked_frames"):
        assert instance.get_materialized_partitions(dg.AssetKey(key)) == set(scene_ids), key
        for scene_id in scene_ids:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(dg.AssetKey(key), asset_partitions=[scene_id]), limit=1
            ).records
            assert records and instance.get_run_by_id(records[0].run_id).is_success, (key, scene_id)


def test_lineage_queries_read_postgres(pg, tmp_path):
    instance, _, scene_ids = pg
    for version in ("v0001", "v0002"):
        lineage = {
            "experiment": {"name": "pg_probe"},
            "version": version,
            "created": "2026-01-01T00:00:00Z",
            "train_scenes": scene_ids[:1] if version == "v0001" else scene_ids,
            "shards": {"data_version": f"shards-{version}"},
        }
        instance.report_runless_asset_event(
            dg.AssetMaterialization("checkpoint", partition=None, metadata={"lineage": dg.MetadataValue.json(lineage)})
        )
    assert checkpoint_lineage(instance, tmp_path, "pg_probe", None)["version"] == "v0002"
    assert checkpoint_lineage(instance, tmp_path, "pg_probe", "v0001")["train_scenes"] == scene_ids[:1]
    refs = scene_lineage(instance, tmp_path, scene_ids[-1])
    assert [(ref.version, ref.status, ref.shards_data_version) for ref in refs] == [("v0002", "pruned", "shards-v0002")]


def test_queued_runs_keep_the_run_queue_limits_with_the_daemon(pg, tmp_path):
    """Two visual-prompts runs of one scene and a task-samples run, queued together: the daemon starts them under
    dagster.yaml's limits (one run per scene partition at a time, two scene runs at most) and all succeed."""
    instance, _, scene_ids = pg
    runs = {
        "prompts_a": ("visual_prompts_job", {"dagster/partition": scene_ids[0]}),
        "prompts_b": ("visual_prompts_job", {"dagster/partition": scene_ids[0]}),
        "samples": ("samples_job", {}),
    }
    run_ids = {name: str(uuid.uuid4()) for name in runs}
    config = json.dumps({"ops": {"visual_prompts": {"config": {"n_frames": 8}}}})
    with open(tmp_path / "daemon.log", "wb") as daemon_log:  # the daemon writes to its own copy
        daemon = subprocess.Popen(
            [DAGSTER_DAEMON, "run", "-w", WORKSPACE],
            cwd=instance.root_directory,
            stdout=daemon_log,
            stderr=subprocess.STDOUT,
        )
    try:
        launches = [
            subprocess.Popen(
                [DAGSTER, "job", "launch", "-w", WORKSPACE, "-j", job, "--run-id", run_ids[name]]
                + ["--tags", json.dumps(tags)]
                + (["--config-json", config] if job == "visual_prompts_job" else []),
                cwd=instance.root_directory,
                stdout=subprocess.DEVNULL,
            )
            for name, (job, tags) in runs.items()
        ]
        assert [launch.wait(timeout=120) for launch in launches] == [0, 0, 0]
        deadline = time.monotonic() + QUEUE_TIMEOUT_S
        while not all(run.is_finished for run in instance.get_runs(dg.RunsFilter(run_ids=list(run_ids.values())))):
            assert time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()[-3000:]
            time.sleep(1)
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
    records = {name: instance.get_run_records(dg.RunsFilter(run_ids=[run_id]))[0] for name, run_id in run_ids.items()}
    assert {name: record.dagster_run.status for name, record in records.items()} == dict.fromkeys(
        runs, dg.DagsterRunStatus.SUCCESS
    ), [failure_messages(instance, run_id) for run_id in run_ids.values()]
    first, second = sorted((records["prompts_a"], records["prompts_b"]), key=lambda record: record.start_time)
    assert first.end_time <= second.start_time  # the same scene partition: one run at a time
    scene_runs = instance.get_run_records(dg.RunsFilter(tags={"gpt4scene/run_kind": "scenes"}))
    assert max_overlap([(r.start_time, r.end_time) for r in scene_runs if r.start_time and r.end_time]) <= 2


def failure_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The messages of a run's failure events (for the assertion that its runs succeeded)."""
    events = [entry.dagster_event for entry in instance.all_logs(run_id) if entry.dagster_event]
    return [str(event.event_specific_data)[:1500] for event in events if event.is_failure]


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of the (start, end) intervals open at one moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = peak = 0
    for _, step in edges:
        open_now += step
        peak = max(peak, open_now)
    return peak
