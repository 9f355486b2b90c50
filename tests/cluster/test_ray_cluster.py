"""Visual prompts on a Ray cluster started separately (``ray start``): joined by ``ray://`` and by ``auto``, scenes
run on the second node, and a node killed mid-run has its scenes retried on the head; the artifacts are always
byte-identical to those of a local run."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from assets.partitions import partition_range_tags, scene_partitions
from assets.raw_scenes import synthetic_scenes
from assets.visual_prompts import visual_prompts
from ops.core.locking import LOCK_NAME
from ops.prompts.driver import PromptSettings, prepare_scene
from resources.ray import SceneRay
from resources.storage import StorageRoot

pytestmark = pytest.mark.slow

SCENES = {
    "n_scenes": 4,
    "seed": 5,
    "n_frames": 30,
    "color_width": 320,
    "color_height": 240,
    "depth_width": 160,
    "depth_height": 120,
}
RUN_CONFIG = {"ops": {"visual_prompts": {"config": {"n_frames": 8}}}}
SETTINGS = PromptSettings(n_frames=8)
PREVIEW_BUDGET = 30_000  # bytes of previews a scene in the event log
# Holds the head's one CPU until a file appears, so the scenes can start only on the second node.
HEAD_BLOCKER = """
import os, sys, time, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
address, head, started, release = sys.argv[1:]
ray.init(address, log_to_driver=False)
def hold():
    open(started, "w").close()
    while not os.path.exists(release):
        time.sleep(0.1)
strategy = NodeAffinitySchedulingStrategy(head, soft=False)
ray.get(ray.remote(num_cpus=1, scheduling_strategy=strategy)(hold).remote())
"""


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Four synthetic scenes, and their artifacts built in this process (the reference of a local run)."""
    root = tmp_path_factory.mktemp("rc_scenes")
    storage = StorageRoot(root=str(root / "data"))
    assert dg.materialize(
        [synthetic_scenes], resources={"storage": storage}, run_config={"ops": {"synthetic_scenes": {"config": SCENES}}}
    ).success
    scene_ids = sorted(p.name for p in storage.scans_dir.iterdir())
    reference = root / "reference"
    for scene_id in scene_ids:
        prepare_scene(storage.raw_scene_dir(scene_id), reference / scene_id, SETTINGS)
    return storage, scene_ids, {scene_id: tree_digest(reference / scene_id) for scene_id in scene_ids}


def tree_digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` by relative path (the scene lock left by a killed writer excluded)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != LOCK_NAME
    }


@dataclass
class RunOutcome:
    """What a visual-prompts run recorded, per scene: its Ray node and the bytes of UI previews in the event log."""

    success: bool
    nodes: dict[str, str] = field(default_factory=dict)
    preview_bytes: dict[str, int] = field(default_factory=dict)


def run_visual_prompts(storage: StorageRoot, scene_ids: list[str], address: str) -> RunOutcome:
    """One range run of the visual prompts over ``scene_ids`` on the Ray at ``address``, in a throwaway instance."""
    job = dg.Definitions(
        assets=[visual_prompts], resources={"storage": storage, "ray_cluster": SceneRay(address=address)}
    ).resolve_implicit_global_asset_job_def()
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(scene_partitions.name, scene_ids)
        result = job.execute_in_process(
            instance=instance, run_config=RUN_CONFIG, tags=partition_range_tags(scene_ids[0], scene_ids[-1])
        )
        outcome = RunOutcome(result.success)
        for event in result.get_asset_materialization_events():
            materialisation = event.event_specific_data.materialization
            scene_id, metadata = materialisation.partition, materialisation.metadata
            outcome.nodes[scene_id] = metadata["ray_node_id"].value
            previews = sum(len(metadata[name].value) for name in ("preview", "contact_sheet") if name in metadata)
            outcome.preview_bytes[scene_id] = outcome.preview_bytes.get(scene_id, 0) + previews
    return outcome


def assert_artifacts_match(storage: StorageRoot, scene_ids: list[str], reference: dict[str, dict[str, str]]) -> None:
    for scene_id in scene_ids:
        assert tree_digest(storage.scene(scene_id).dir) == reference[scene_id], scene_id


@pytest.mark.parametrize("join", ["ray_client", "auto"])
def test_scenes_run_on_both_nodes_with_local_artifacts(ray_cluster, scenes, tmp_path, monkeypatch, join):
    source, scene_ids, reference = scenes
    storage = StorageRoot(root=str(tmp_path / "data"), raw_root=str(source.raw_path))
    if join == "auto":
        monkeypatch.setenv("RAY_ADDRESS", ray_cluster.gcs_address)
    outcome = run_visual_prompts(storage, scene_ids, ray_cluster.client_address if join == "ray_client" else "auto")
    assert outcome.success
    nodes = outcome.nodes
    assert set(nodes) == set(scene_ids)
    assert ray_cluster.node_id("worker_node") in nodes.values(), nodes
    assert set(nodes.values()) <= {ray_cluster.head_node_id(), ray_cluster.node_id("worker_node")}
    assert_artifacts_match(storage, scene_ids, reference)
    assert max(outcome.preview_bytes.values()) <= PREVIEW_BUDGET


def test_killed_node_has_its_scenes_retried_on_the_head(ray_cluster, scenes, tmp_path):
    source, scene_ids, reference = scenes
    storage = StorageRoot(root=str(tmp_path / "data"), raw_root=str(source.raw_path))
    head, doomed = ray_cluster.head_node_id(), ray_cluster.nodes[-1]
    started, release = tmp_path / "head_held", tmp_path / "head_released"
    blocker = subprocess.Popen(
        [sys.executable, "-c", HEAD_BLOCKER, ray_cluster.gcs_address, head, str(started), str(release)]
    )
    try:
        wait_for(started.exists, "the head's CPU to be held")
        outcomes: list[RunOutcome] = []
        run = threading.Thread(
            target=lambda: outcomes.append(run_visual_prompts(storage, scene_ids, ray_cluster.client_address))
        )
        run.start()
        wait_for(lambda: any(storage.scene(s).dir.exists() for s in scene_ids), "a scene to start on the second node")
        doomed.kill()
        release.touch()
        run.join(timeout=300)
    finally:
        release.touch()
        blocker.kill()
        ray_cluster.nodes.remove(doomed)
        ray_cluster.add_node(doomed.resources)  # the other tests keep their second node
    (outcome,) = outcomes
    assert outcome.success
    assert set(outcome.nodes.values()) == {head}
    assert_artifacts_match(storage, scene_ids, reference)


def wait_for(condition, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)
