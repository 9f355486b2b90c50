"""The ``ray`` training backend for real: the checkpoint asset submits a Ray Job to the test cluster's job server, the
job runs the tiny training with two torchrun processes, rank 0's Pipes messages reach the asset, and a stopped job
is resumed by the next materialisation."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from test_training_pipeline import Setup

from assets.training import base_model
from ops.model.training.entry import free_port
from ops.model.training.trainer import last_complete_checkpoint
from resources.training import BaseModelSource, TrainingLauncher

pytestmark = pytest.mark.slow


class RaySetup(Setup):
    """The training pipeline's setup, its launcher submitting Ray Jobs to ``dashboard_url``."""

    dashboard_url = ""

    def resources(self, launcher: str = "torchrun") -> dict:
        launcher_resource = TrainingLauncher(
            backend="ray",
            launcher=launcher,
            nproc_per_node=2,
            ray_gpus=False,
            ray_address=self.dashboard_url,
            python=sys.executable,
            master_port=free_port(),
        )
        return {"storage": self.storage, "base_model_source": BaseModelSource(), "training_launcher": launcher_resource}


@pytest.fixture(scope="module")
def ray_setup(ray_cluster, tmp_path_factory):
    setup = RaySetup(tmp_path_factory.mktemp("ray_jobs"))
    setup.dashboard_url = ray_cluster.dashboard_url
    setup.dataset(variants=("marked",))
    assert setup.materialize([base_model]).success
    return setup


def stop_job_after_checkpoint(dashboard_url: str, runs: Path, old_runs: set[str], stopped: dict) -> None:
    """Once a new run folder holds a complete checkpoint, stop the running Ray job (its whole process tree)."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(dashboard_url)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and "job" not in stopped:
        for run_dir in [p for p in runs.iterdir() if p.name not in old_runs]:
            found = last_complete_checkpoint(run_dir)
            if found is not None:
                for job in client.list_jobs():
                    if job.status == JobStatus.RUNNING:
                        client.stop_job(job.submission_id)
                        stopped.update(job=job.submission_id, checkpoint=found.name)
        time.sleep(0.2)


def test_ray_job_trains_with_two_processes_reports_through_pipes_and_resumes_after_a_stop(ray_setup):
    runs = ray_setup.layout.models.run("x").parent
    runs.mkdir(parents=True, exist_ok=True)
    runs_before = {p.name for p in runs.iterdir()}
    stopped: dict = {}
    watcher = threading.Thread(
        target=stop_job_after_checkpoint, args=(ray_setup.dashboard_url, runs, runs_before, stopped)
    )
    watcher.start()
    first = ray_setup.train("exp_resume")
    watcher.join()
    assert "job" in stopped and not first.success

    second = ray_setup.train("exp_resume")
    assert second.success
    metadata = second.asset_materializations_for_node("checkpoint")[0].metadata
    assert metadata["resumed_from"].value.startswith("checkpoint-")
    assert metadata["global_step"].value == 12
    assert metadata["progress_messages"].value > 0  # rank 0's Pipes messages reached the asset
    from ray.job_submission import JobStatus, JobSubmissionClient

    jobs = {job.submission_id: job for job in JobSubmissionClient(ray_setup.dashboard_url).list_jobs()}
    assert jobs[stopped["job"]].status == JobStatus.STOPPED
    (finished,) = [
        job for job in jobs.values() if job.status == JobStatus.SUCCEEDED and "training_worker" in job.entrypoint
    ]
    assert "--nproc_per_node=2" in finished.entrypoint  # two torchrun processes inside the job
