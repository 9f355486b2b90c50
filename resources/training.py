"""Launching the training worker (``python -m resources.training_worker``): locally, on a Ray cluster, or as a k8s Job.

``TrainingLauncher`` builds one command line for every backend — ``torchrun`` (``torch.distributed.run``) or
the ``deepspeed`` launcher around ``-m resources.training_worker`` — and runs it through Dagster Pipes, so rank 0's
log lines and progress messages reach the asset while it trains:

- ``local``: a subprocess (``dagster.PipesSubprocessClient``): one process per visible GPU, one on CPU;
- ``ray``: a Ray job on an existing cluster (``dagster_ray.PipesRayJobClient``), the same command as entrypoint,
  with the GPUs requested for the entrypoint; the cluster's nodes must have this project installed and see the
  storage root at the same path;
- ``k8s``: renders a ``batch/v1`` Job (``render_k8s_job``) for a GPU cluster whose image holds this project and
  whose volume holds the storage root. Submitting it needs dagster-k8s's ``PipesK8sClient``, which this project
  does not install: the backend writes the spec beside the run and fails naming it.

A non-zero exit of the command (a killed or failed rank) raises, which fails the asset.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import dagster as dg
from pydantic import Field, field_validator

from ops.core.atomic import write_json
from ops.model.training.entry import free_port
from resources.environment import LOCATION_ENV, OFFLINE_ENV

PROJECT_DIR = Path(__file__).resolve().parent.parent
Backend = Literal["local", "ray", "k8s"]
Launcher = Literal["torchrun", "deepspeed"]
BACKENDS, LAUNCHERS = get_args(Backend), get_args(Launcher)
WORKER_MODULE = "resources.training_worker"  # ops.model.training's command line, reporting through Dagster Pipes


@dataclass(frozen=True)
class TrainingRun:
    """The entry point's arguments for one run (paths as the training processes see them)."""

    recipe: Path
    model_dir: Path
    shards_dir: Path
    run_dir: Path
    image_root: Path | None = None

    def entry_args(self) -> list[str]:
        args = [
            "--recipe",
            str(self.recipe),
            "--model",
            str(self.model_dir),
            "--shards",
            str(self.shards_dir),
            "--run-dir",
            str(self.run_dir),
        ]
        return args + (["--image-root", str(self.image_root)] if self.image_root else [])


class BaseModelSource(dg.ConfigurableResource):
    """Where the base model comes from: a downloaded model folder (e.g. Qwen2-VL-7B-Instruct), or, empty, the tiny
    random Qwen2-VL that the ``base_model`` asset builds under ``<root>/models/base``."""

    model_dir: str = Field(default="", description="Local model folder (env GPT4SCENE_BASE_MODEL); empty = tiny.")


class TrainingLauncher(dg.ConfigurableResource):
    """How and where the training processes run (see the module docstring). ``backend`` and ``launcher`` are
    checked when the resource is built: at definitions load, or at run start for an ``EnvVar``."""

    backend: str = Field(default=LOCATION_ENV["GPT4SCENE_TRAIN_BACKEND"], description=f"one of {BACKENDS}")
    launcher: str = Field(default=LOCATION_ENV["GPT4SCENE_TRAIN_LAUNCHER"], description=f"one of {LAUNCHERS}")
    nproc_per_node: int = Field(default=0, description="processes per node; 0 = the visible GPUs, 1 on CPU")
    nnodes: int = Field(default=1, description="nodes (ray and k8s backends)")
    master_port: int = Field(default=0, description="rendezvous port; 0 = a free port (local)")
    python: str = Field(
        default="", description="interpreter of the training processes; empty = this one (local), 'python' (ray, k8s)"
    )
    ray_address: str = Field(default="", description="Ray dashboard address of the cluster, http://head:8265")
    ray_gpus: bool = Field(default=True, description="ray: request one GPU per process (false on a CPU cluster)")
    k8s_image: str = Field(default="gpt4scene:latest", description="container image holding this project")
    k8s_namespace: str = Field(default="default")
    k8s_gpus_per_node: int = Field(default=8, description="nvidia.com/gpu per pod")
    k8s_storage_claim: str = Field(default="gpt4scene-data", description="PVC holding the storage root")
    k8s_storage_mount: str = Field(default="/data", description="where the PVC is mounted (= the storage root there)")

    @field_validator("backend", "launcher", mode="before")
    @classmethod
    def _one_of_the_choices(cls, value: Any, info: Any) -> Any:
        choices = BACKENDS if info.field_name == "backend" else LAUNCHERS
        if not isinstance(value, dg.EnvVar) and value not in choices:  # an EnvVar: checked once resolved
            raise ValueError(f"{info.field_name} must be one of {choices}, got {value!r}")
        return value

    def _processes(self) -> int:
        if self.nproc_per_node > 0:
            return self.nproc_per_node
        import torch

        return max(torch.cuda.device_count(), 1)

    def command(
        self,
        run: TrainingRun,
        python: str,
        nproc: int,
        master_addr: str,
        master_port: int,
        nnodes: int = 1,
        node_rank: str = "0",
    ) -> list[str]:
        """The launcher command line around ``-m resources.training_worker``."""
        if self.launcher == "torchrun":
            launch = [
                python,
                "-m",
                "torch.distributed.run",
                f"--nnodes={nnodes}",
                f"--node_rank={node_rank}",
                f"--nproc_per_node={nproc}",
                f"--master_addr={master_addr}",
                f"--master_port={master_port}",
                "-m",
                WORKER_MODULE,
            ]
        else:  # the deepspeed launcher appends --local_rank=N, which the entry point accepts
            if nnodes > 1:
                raise ValueError("multi-node runs use the torchrun launcher (deepspeed's needs a hostfile and pdsh)")
            launch = [
                python,
                "-m",
                "deepspeed.launcher.runner",
                f"--num_gpus={nproc}",
                f"--master_addr={master_addr}",
                f"--master_port={master_port}",
                "--module",
                WORKER_MODULE,
            ]
        return launch + run.entry_args()

    def local_command(self, run: TrainingRun) -> list[str]:
        return self.command(
            run, self.python or sys.executable, self._processes(), "127.0.0.1", self.master_port or free_port()
        )

    def ray_job_params(self, run: TrainingRun) -> dict[str, Any]:
        """``JobSubmissionClient.submit_job`` parameters: the launcher command as entrypoint on one node, its GPUs
        requested for the entrypoint (all ranks run inside the entrypoint's process tree)."""
        nproc = self.nproc_per_node or 1
        command = self.command(run, self.python or "python", nproc, "127.0.0.1", self.master_port or 29500)
        return {
            "entrypoint": shlex.join(command),
            "entrypoint_num_gpus": nproc if self.nproc_per_node > 0 and self.ray_gpus else 0,
            "entrypoint_num_cpus": 1,
            "runtime_env": {"env_vars": dict(OFFLINE_ENV)},
            "metadata": {"gpt4scene/run_dir": str(run.run_dir)},
        }

    def render_k8s_job(self, run: TrainingRun, name: str) -> dict[str, Any]:
        """A ``batch/v1`` Indexed Job: one pod per node, ``k8s_gpus_per_node`` GPUs each, ranks rendezvous at pod 0
        through a headless service of the same name (``<name>-0.<name>``)."""
        nproc = self.nproc_per_node or self.k8s_gpus_per_node
        master = f"{name}-0.{name}" if self.nnodes > 1 else "127.0.0.1"
        command = self.command(
            run,
            self.python or "python",
            nproc,
            master,
            self.master_port or 29500,
            nnodes=self.nnodes,
            node_rank="$(JOB_COMPLETION_INDEX)",
        )
        labels = {"app.kubernetes.io/name": "gpt4scene-train", "gpt4scene/run": run.run_dir.name}
        container = {
            "name": "train",
            "image": self.k8s_image,
            "command": command,
            "workingDir": "/app",
            "env": [{"name": name, "value": value} for name, value in {**OFFLINE_ENV, "NCCL_DEBUG": "WARN"}.items()],
            "resources": {"limits": {"nvidia.com/gpu": nproc}, "requests": {"nvidia.com/gpu": nproc}},
            "volumeMounts": [
                {"name": "storage", "mountPath": self.k8s_storage_mount},
                {"name": "dshm", "mountPath": "/dev/shm"},
            ],
        }
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": self.k8s_namespace, "labels": labels},
            "spec": {
                "completionMode": "Indexed",
                "completions": self.nnodes,
                "parallelism": self.nnodes,
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "subdomain": name,
                        "restartPolicy": "Never",
                        "containers": [container],
                        "volumes": [
                            {"name": "storage", "persistentVolumeClaim": {"claimName": self.k8s_storage_claim}},
                            {"name": "dshm", "emptyDir": {"medium": "Memory"}},
                        ],
                    },
                },
            },
        }

    def launch(self, context: dg.AssetExecutionContext, run: TrainingRun) -> list[dict[str, Any]]:
        """Run the training and return rank 0's Pipes custom messages; raises when the run fails."""
        if self.backend == "local":
            command = self.local_command(run)
            context.log.info(f"launching: {shlex.join(command)}")
            client = dg.PipesSubprocessClient(cwd=str(PROJECT_DIR))
            return list(client.run(context=context, command=command).get_custom_messages())
        if self.backend == "ray":
            from dagster_ray import PipesRayJobClient

            params = self.ray_job_params(run)
            context.log.info(f"submitting to Ray at {self.ray_address or '$RAY_ADDRESS'}: {params['entrypoint']}")
            client = PipesRayJobClient(address=self.ray_address or None)
            return list(client.run(context=context, submit_job_params=params).get_custom_messages())
        if self.backend == "k8s":
            spec_path = run.run_dir / "k8s_job.json"
            write_json(spec_path, self.render_k8s_job(run, f"gpt4scene-train-{run.run_dir.name[:40]}"))
            raise dg.Failure(
                description=f"k8s backend: the Job spec is at {spec_path}; submit it with `kubectl apply -f` (or "
                "dagster-k8s's PipesK8sClient, which this project does not install).",
                metadata={"job_spec": dg.MetadataValue.json(json.loads(spec_path.read_text()))},
            )
        raise AssertionError(f"unchecked backend {self.backend!r}")
