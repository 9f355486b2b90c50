"""The Dagster UI in a real browser: headless Chromium materialises one scene's BEV through the UI's own buttons.

Debian's `chromium` and npm's `playwright-core` (pinned in tests/ui/package.json) are installed by
tests/ui/setup_browser.sh into the system and build/ui-node/; the test skips only when Chromium cannot be installed
(no root / apt). Screenshots are saved under build/ui/.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile

import dagster as dg
import pytest
from uiproc import PROJECT_DIR, start_ui, stop_ui, temp_dagster_home

from assets.partitions import scene_partitions
from assets.raw_scenes import scene_manifest
from assets.visual_prompts import visual_prompts
from ops.synthetic import generate_dataset
from resources.ray import SceneRay
from resources.storage import StorageRoot

SETUP = PROJECT_DIR / "tests" / "ui" / "setup_browser.sh"
DRIVER = PROJECT_DIR / "tests" / "ui" / "materialize_bev.cjs"
NODE_MODULES = PROJECT_DIR / "build" / "ui-node" / "node_modules"
SCREENSHOTS = PROJECT_DIR / "build" / "ui"
SCENE = "scene0000_00"


@pytest.fixture(scope="module")
def browser() -> str:
    """Path of the Chromium executable, installed on first use; skips where it cannot be installed."""
    done = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=900)
    if done.returncode == 3:
        pytest.skip(f"Chromium cannot be installed on this machine: {done.stderr.strip()}")
    assert done.returncode == 0, done.stdout + done.stderr
    return shutil.which("chromium")


@pytest.mark.slow
def test_materialise_bev_from_the_ui(browser, tmp_path):
    # Automation off: the only runs are the upstream build below and the one launched from the UI.
    root, home = tmp_path / "root", temp_dagster_home(tmp_path / "home", automation=False)
    storage = StorageRoot(root=str(root))
    generate_dataset(storage.raw_path, n_scenes=1, seed=11, n_frames=24, color_size=(160, 120), depth_size=(80, 60))
    # The scene is registered and its point cloud and instances exist, as after the sensor and a first build.
    instance = dg.DagsterInstance.from_config(str(home))
    instance.add_dynamic_partitions(scene_partitions.name, [SCENE])
    ray_tmp = tempfile.mkdtemp(prefix="g4s-ray-", dir="/tmp")  # short: Ray's unix sockets allow 107 bytes
    upstream = dg.materialize(
        [scene_manifest, visual_prompts],
        partition_key=SCENE,
        instance=instance,
        selection=["scene_manifest", "point_cloud", "instance_masks"],
        resources={"storage": storage, "ray_cluster": SceneRay(temp_dir=ray_tmp)},
    )
    assert upstream.success
    instance.dispose()
    shutil.rmtree(ray_tmp, ignore_errors=True)

    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    server = start_ui(home, root, tmp_path / "ui.log")
    try:
        env = {
            **os.environ,
            "PLAYWRIGHT_CORE": str(NODE_MODULES / "playwright-core"),
            "CHROMIUM": browser,
            "USER_DATA_DIR": str(tmp_path / "chromium-profile"),
        }
        driven = subprocess.run(
            ["node", str(DRIVER), server.url, SCENE, str(SCREENSHOTS)],
            capture_output=True,
            text=True,
            env=env,
            timeout=400,
        )
    finally:
        left, seconds = stop_ui(server, signal.SIGINT, timeout=15)  # Ctrl-C, as in a terminal
    lines = driven.stdout.strip().splitlines()
    assert lines, f"driver printed nothing: {driven.stderr[-3000:]}"
    outcome = json.loads(lines[-1])
    log = server.log.read_text()[-3000:]
    assert outcome["ok"], f"{outcome.get('error')}\n(screenshot: {SCREENSHOTS / 'failure.png'})\n{log}"
    assert outcome["status"] == "SUCCESS"
    assert outcome["src_prefix"] == "data:image/webp;base64," and outcome["natural_width"] > 100
    assert outcome["shown_width"] > 100
    for name in ("asset_graph.png", "launch_dialog.png", "run.png", "bev_preview.png"):
        assert (SCREENSHOTS / name).stat().st_size > 10_000, name

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert instance.get_materialized_partitions(dg.AssetKey("bev_image")) == {SCENE}
        run = instance.get_run_by_id(outcome["run_id"])
        assert run.tags.get("dagster/partition") == SCENE and run.asset_selection == {dg.AssetKey("bev_image")}
        assert len(instance.get_runs()) == 2, [(r.job_name, r.asset_selection) for r in instance.get_runs()]
    finally:
        instance.dispose()
    assert (storage.scene_dir(SCENE) / "bev" / "bev.png").is_file()
    assert not left, f"still alive {seconds:.0f} s after SIGINT: {sorted(left)}"
