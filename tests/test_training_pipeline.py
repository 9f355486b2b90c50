"""Experiments through Dagster: the real launchers (torchrun and deepspeed, DeepSpeed ZeRO-2 on CPU via gloo) train
the tiny Qwen2-VL on shards built by the real dataset assets, one `checkpoint` partition per experiment.

Checked: lineage and versioned checkpoints, training experiment B after A leaves A's checkpoint and score files
byte-identical with both in the leaderboard, a rebuilt variant makes only its experiments stale (Dagster's stale
status), retraining without a scene (`gpt4scene lineage scene` lists the older version only), resume after a kill,
pruning, a fresh-process PeftModel load, and full fine-tuning under ZeRO-3 from the bare entry point.

One module-scoped storage root with three synthetic scenes (two train, one val) and a Dagster instance on disk (the
lineage command reads it through DAGSTER_HOME). DeepSpeed JIT-compiles its shm_comm op once per
TORCH_EXTENSIONS_DIR (about 30 s, the first time only).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import psutil
import pytest
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver
from fixtures_dataset import PROMPT_SETTINGS

from assets.dataset import eval_sets, task_samples, training_shards
from assets.evaluation import build_evaluation_assets
from assets.leaderboard import build_leaderboard_asset
from assets.training import base_model, build_checkpoint_asset
from ops.model.experiments import load_experiments
from ops.model.training.trainer import last_complete_checkpoint
from ops.prompts.driver import prepare_scene
from ops.synthetic import generate_dataset
from resources.storage import StorageRoot
from resources.training import PROJECT_DIR, BaseModelSource, TrainingLauncher

pytestmark = pytest.mark.slow

EXPERIMENTS = PROJECT_DIR / "recipes" / "experiments"
DS_DIR = PROJECT_DIR / "recipes" / "deepspeed"
EVAL_CONFIG = {"ops": {"predictions": {"config": {"max_new_tokens": 4, "limit": 6}}}}


def _experiment(folder: Path, name: str, source: str = "tiny_marked.yaml", **values) -> None:
    """A copy of a project experiment with some values replaced (same layout and comments)."""
    values = {"deepspeed": str(DS_DIR / "ds_z2_config.json"), **values}
    lines = []
    for line in (EXPERIMENTS / source).read_text().splitlines():
        key = line.split(":", 1)[0]
        lines.append(f"{key}: {values[key]}" if key in values and not line.startswith("#") else line)
    (folder / f"{name}.yaml").write_text("\n".join(lines) + "\n")


def _tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class Setup:
    """The storage root, the instance, the test experiments and their assets."""

    def __init__(self, base: Path):
        raw, root = base / "raw", base / "root"
        self.truth = generate_dataset(
            raw, n_scenes=3, seed=5, n_frames=30, color_size=(320, 240), depth_size=(160, 120)
        )
        for scene_id in self.truth.train_ids + self.truth.val_ids:
            prepare_scene(raw / "scans" / scene_id, root / "scenes" / scene_id, PROMPT_SETTINGS)
        self.storage = StorageRoot(root=str(root), raw_root=str(raw))
        self.home = base / "dagster_home"
        self.home.mkdir()
        self.instance = dg.DagsterInstance.local_temp(str(self.home))
        folder = base / "experiments"
        folder.mkdir()
        steps = {"per_device_train_batch_size": 2, "save_steps": 8, "logging_steps": 4, "learning_rate": "1.0e-2"}
        _experiment(folder, "exp_marked", max_steps=16, **steps)
        _experiment(folder, "exp_unmarked", "tiny_unmarked.yaml", max_steps=4, **steps)
        _experiment(folder, "exp_resume", max_steps=12, **{**steps, "save_steps": 4, "logging_steps": 2})
        (folder / "base.yaml").write_text((EXPERIMENTS / "base.yaml").read_text())
        self.experiments = load_experiments(folder)
        self.checkpoint = build_checkpoint_asset(self.experiments)
        self.evaluation = build_evaluation_assets(self.experiments)
        self.leaderboard = build_leaderboard_asset(self.experiments)
        self.graph = [task_samples, training_shards, eval_sets, base_model, self.checkpoint, *self.evaluation]
        self.assets = [*self.graph, self.leaderboard]

    @property
    def layout(self):
        return self.storage.layout

    def resources(self, launcher: str = "torchrun") -> dict:
        return {
            "storage": self.storage,
            "base_model_source": BaseModelSource(),
            "training_launcher": TrainingLauncher(launcher=launcher),
        }

    def materialize(self, selection, partition_key: str | None = None, launcher: str = "torchrun", **kwargs):
        """Materialise ``selection`` within the whole graph (so Dagster maps partitioned inputs as the definitions
        do)."""
        return dg.materialize(
            self.assets,
            selection=selection,
            instance=self.instance,
            resources=self.resources(launcher),
            partition_key=partition_key,
            raise_on_error=False,
            **kwargs,
        )

    def dataset(self, variants=("marked", "unmarked"), run_config=None) -> None:
        samples = {"ops": {"task_samples": {"config": {"variants": ["marked", "unmarked"]}}}}
        assert self.materialize([task_samples], run_config=samples).success
        for variant in variants:
            assert self.materialize([training_shards, eval_sets], variant, run_config=run_config).success

    def train(self, experiment: str, launcher: str = "torchrun"):
        return self.materialize([self.checkpoint], experiment, launcher, run_config=None)

    def evaluate(self, experiment: str):
        result = self.materialize(self.evaluation, experiment, run_config=EVAL_CONFIG)
        assert result.success
        return result


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    setup = Setup(tmp_path_factory.mktemp("training"))
    setup.dataset()
    assert setup.materialize([base_model]).success
    return setup


@pytest.fixture(scope="module")
def trained(setup):
    """Experiment A (marked) through torchrun with DeepSpeed ZeRO-2, 16 steps of 2 rows, then evaluated."""
    started = time.perf_counter()
    result = setup.train("exp_marked")
    print(f"torchrun + ZeRO-2 materialisation: {time.perf_counter() - started:.1f} s")
    assert result.success
    setup.evaluate("exp_marked")
    return result


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_torchrun_zero2_training_publishes_a_version_with_its_lineage(setup, trained):
    metadata = trained.asset_materializations_for_node("checkpoint")[0].metadata
    first, final = metadata["first_loss"].value, metadata["final_loss"].value
    print(f"loss {first:.3f} -> {final:.3f} in {metadata['global_step'].value} steps")
    assert metadata["global_step"].value == 16 and final < first - 3.0
    assert metadata["progress_messages"].value == 5  # rank 0's Pipes messages: steps 1, 4, 8, 12, 16
    assert metadata["loss_curve"].value.startswith("![loss curve](data:image/png;base64,")
    assert metadata["version"].value == "v0001"
    out = setup.layout.models.checkpoint("exp_marked", "v0001")
    assert {"adapter_config.json", "adapter_model.safetensors", "lineage.json", "loss_curve.png"} <= {
        p.name for p in out.iterdir()
    }
    lineage = json.loads((out / "lineage.json").read_text())
    shards_version = json.loads((setup.storage.dataset.train_shards("marked") / "manifest.json").read_text())[
        "data_version"
    ]
    assert lineage["shards"]["data_version"] == metadata["shards_data_version"].value == shards_version
    assert lineage["train_scenes"] == sorted(setup.truth.train_ids)
    assert set(lineage["scenes"][setup.truth.train_ids[0]]) >= {"raw_scan", "marked_frames"}
    assert lineage["experiment"]["name"] == "exp_marked" and lineage["experiment"]["data_variant"] == "marked"
    assert lineage["recipe"]["deepspeed_config"]["zero_optimization"]["stage"] == 2
    assert lineage["final_metrics"]["deepspeed_stage"] == 2 and lineage["final_metrics"]["precision"] == "fp32"
    assert lineage["base_model"]["path"] == str(setup.layout.models.base)
    assert len(lineage["code_commit"].split("-")[0]) == 40 or lineage["code_commit"] == "unknown"
    assert _checks(trained) == {"checkpoint_loads": True, "loss_decreased": True}
    record = setup.instance.get_latest_data_version_record(dg.AssetKey("checkpoint"), partition_key="exp_marked")
    assert "dagster/input_data_version/training_shards" in record.event_log_entry.asset_materialization.tags


def test_experiment_b_leaves_experiment_a_untouched_and_both_are_on_the_leaderboard(setup, trained):
    checkpoint_a = _tree(setup.layout.models.experiment_checkpoints("exp_marked"))
    scores_a = _tree(setup.layout.evaluation.run_scores("exp_marked"))
    predictions_a = _tree(setup.layout.evaluation.prediction_run("exp_marked"))
    assert setup.train("exp_unmarked").success
    setup.evaluate("exp_unmarked")
    assert setup.train("base").success
    base_eval = setup.evaluate("base")
    assert _checks(base_eval)["beats_base_model"]  # the base experiment is not compared with itself
    assert _tree(setup.layout.models.experiment_checkpoints("exp_marked")) == checkpoint_a
    assert _tree(setup.layout.evaluation.run_scores("exp_marked")) == scores_a
    assert _tree(setup.layout.evaluation.prediction_run("exp_marked")) == predictions_a
    base_lineage = json.loads((setup.layout.models.checkpoint("base", "v0001") / "lineage.json").read_text())
    assert base_lineage["checkpoint"] == "base_model" and base_lineage["train_scenes"] == []

    board = setup.materialize([setup.leaderboard])
    assert board.success
    table = board.asset_materializations_for_node("leaderboard")[0].metadata["leaderboard"].value
    rows = json.loads(setup.layout.evaluation.leaderboard("json").read_text())["rows"]
    ours = {row["experiment"]: row for row in rows if row["kind"] == "ours"}
    assert set(ours) == {"exp_marked", "exp_unmarked", "base"}
    assert ours["exp_marked"]["train_scenes"] == 2 and ours["exp_unmarked"]["variant"] == "unmarked"
    assert ours["exp_marked"]["recipe_hash"] == setup.experiments["exp_marked"].recipe.hash
    assert any(row["experiment"].startswith("GPT4Scene-HDM") and row["headline"]["scanqa"] == 96.3 for row in rows)
    assert "| exp_unmarked | v0001 | unmarked |" in table
    csv_text = setup.layout.evaluation.leaderboard("csv").read_text()
    assert csv_text.splitlines()[0].startswith("kind,experiment,version,variant")


def test_rebuilding_the_unmarked_shards_makes_only_the_unmarked_experiment_stale(setup, trained):
    if "exp_unmarked" not in {p.name for p in setup.layout.models.checkpoints.iterdir()}:
        assert setup.train("exp_unmarked").success
    key = dg.AssetKey("checkpoint")
    resolver = get_stale_status_resolver(setup.instance, setup.graph)
    assert resolver.get_status(key, "exp_unmarked") == StaleStatus.FRESH
    assert resolver.get_status(key, "exp_marked") == StaleStatus.FRESH
    smaller = {"ops": {"training_shards": {"config": {"target_shard_mb": 0.05}}}}
    assert setup.materialize([training_shards], "unmarked", run_config=smaller).success
    resolver = get_stale_status_resolver(setup.instance, setup.graph)
    assert resolver.get_status(key, "exp_unmarked") == StaleStatus.STALE
    causes = resolver.get_stale_causes(key, "exp_unmarked")
    assert any(c.dependency and c.dependency.asset_key == dg.AssetKey("training_shards") for c in causes), causes
    assert resolver.get_status(key, "exp_marked") == StaleStatus.FRESH
    assert resolver.get_status(key, "base") == StaleStatus.FRESH


def test_retraining_without_a_scene_leaves_it_only_in_the_older_version(setup, trained, monkeypatch, capsys):
    from pipelines.cli import main

    dropped = sorted(setup.truth.train_ids)[0]
    split = setup.storage.annotations_dir / "scannetv2_train.txt"
    split.write_text("".join(f"{s}\n" for s in split.read_text().split() if s != dropped))
    setup.dataset(variants=("marked",))
    assert setup.train("exp_marked").success  # v0002, without the dropped scene
    lineage = json.loads((setup.layout.models.checkpoint("exp_marked", "v0002") / "lineage.json").read_text())
    assert dropped not in lineage["train_scenes"] and lineage["train_scenes"]

    monkeypatch.setenv("DAGSTER_HOME", str(setup.home))
    assert main(["lineage", "scene", dropped, "--json", "--root", str(setup.storage.root_path)]) == 0
    found = json.loads(capsys.readouterr().out)["checkpoints"]
    versions = {(ref["experiment"], ref["version"]) for ref in found}
    assert ("exp_marked", "v0001") in versions and ("exp_marked", "v0002") not in versions
    assert {ref["status"] for ref in found if ref["experiment"] == "exp_marked"} == {"past"}

    assert main(["lineage", "checkpoint", "exp_marked", "--root", str(setup.storage.root_path)]) == 0
    chain = capsys.readouterr().out
    assert "exp_marked v0002 (trained)" in chain and "shards data version" in chain and "recipe" in chain


FRESH_PROCESS = """
import sys, torch
from peft import PeftModel
from transformers import AutoTokenizer, Qwen2VLForConditionalGeneration
base_dir, adapter_dir = sys.argv[1:]
base = Qwen2VLForConditionalGeneration.from_pretrained(base_dir, local_files_only=True)
model = PeftModel.from_pretrained(base, adapter_dir, local_files_only=True).eval()
tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
prompt = "<|im_start|>user\\nWhere is the chair?<|im_end|>\\n<|im_start|>assistant\\n"
ids = tokenizer(prompt, return_tensors="pt").input_ids
with torch.inference_mode():
    out = model.generate(input_ids=ids, max_new_tokens=6, do_sample=False)
print("ANSWER", repr(tokenizer.decode(out[0, ids.shape[1]:])), out.shape[1] - ids.shape[1])
"""


def test_adapter_loads_in_a_fresh_process_with_plain_peft_and_generates(setup, trained):
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH_PROCESS,
            str(setup.layout.models.base),
            str(setup.layout.models.checkpoint("exp_marked", "v0001")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    answer_line = [line for line in out.stdout.splitlines() if line.startswith("ANSWER")][0]
    assert int(answer_line.rsplit(" ", 1)[1]) >= 1


def test_full_finetuning_with_zero3_trains_the_language_model_only_and_saves_a_loadable_model(
    setup, tiny_model_dir, tmp_path
):
    """The entry point run alone (no launcher: it sets up a world of one), full fine-tuning under ZeRO-3."""
    import safetensors.torch

    from ops.model.vlm import generate, load_vlm

    recipe = tmp_path / "full_z3.yaml"
    recipe.write_text(
        f"finetuning_type: full\ndeepspeed: {DS_DIR / 'ds_z3_config.json'}\nmax_steps: 3\n"
        "per_device_train_batch_size: 2\nlearning_rate: 1.0e-3\nlogging_steps: 1\nsave_steps: 100\n"
    )
    run_dir = tmp_path / "full_run"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ops.model.training",
            "--recipe",
            str(recipe),
            "--model",
            str(tiny_model_dir),
            "--shards",
            str(setup.storage.dataset.train_shards()),
            "--run-dir",
            str(run_dir),
        ],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run_dir / "final" / "train_summary.json").read_text())
    assert (summary["deepspeed_stage"], summary["finetuning_type"], summary["global_step"]) == (3, "full", 3)
    before = safetensors.torch.load_file(tiny_model_dir / "model.safetensors")
    after = safetensors.torch.load_file(run_dir / "final" / "model.safetensors")
    changed = {name for name in before if not bool((before[name] == after[name]).all())}
    assert "model.layers.0.self_attn.q_proj.weight" in changed and not any("visual" in n for n in changed)
    assert len(generate(load_vlm(run_dir / "final"), [("Where is the chair?", [])], max_new_tokens=3)) == 1


def _kill_worker_after(run_dir_parent: Path, old_runs: set[str], step: int, killed: dict) -> None:
    """Wait for a complete checkpoint of at least ``step`` in a new run folder, then SIGKILL the training worker
    (the leaf process running ops.model.training under the launcher)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and "pid" not in killed:
        for run_dir in [p for p in run_dir_parent.iterdir() if p.name not in old_runs]:
            found = last_complete_checkpoint(run_dir)
            if found is not None and int(found.name.split("-")[1]) >= step:
                for process in psutil.Process().children(recursive=True):
                    try:
                        if "resources.training_worker" in " ".join(process.cmdline()) and not process.children():
                            process.send_signal(signal.SIGKILL)
                            killed.update(pid=process.pid, checkpoint=found.name)
                    except psutil.NoSuchProcess:
                        pass
        time.sleep(0.2)


def test_killed_training_fails_the_asset_and_the_next_materialisation_resumes(setup, trained):
    killed: dict = {}
    runs = setup.layout.models.run("x").parent
    runs_before = {p.name for p in runs.iterdir()}
    watcher = threading.Thread(target=_kill_worker_after, args=(runs, runs_before, 4, killed))
    watcher.start()
    first = setup.train("exp_resume", launcher="deepspeed")
    watcher.join()
    assert "pid" in killed and not first.success
    failure = next(e for e in first.all_events if e.event_type_value == "STEP_FAILURE")
    print("failure of the killed run:", failure.event_specific_data.error.message.strip().splitlines()[-1][:300])
    assert not setup.layout.models.experiment_checkpoints("exp_resume").is_dir() or not any(
        p.name.startswith("v") for p in setup.layout.models.experiment_checkpoints("exp_resume").iterdir()
    )

    second = setup.train("exp_resume", launcher="deepspeed")
    assert second.success
    metadata = second.asset_materializations_for_node("checkpoint")[0].metadata
    resumed_from = metadata["resumed_from"].value
    assert resumed_from.startswith("checkpoint-") and int(resumed_from.split("-")[1]) >= 4
    assert metadata["global_step"].value == 12
    (run_dir,) = {p for p in runs.iterdir() if p.name not in runs_before}
    history = json.loads((run_dir / "final" / "train_summary.json").read_text())["log_history"]
    assert [h["step"] for h in history] == [1, 2, 4, 6, 8, 10, 12]  # steps before the kill came from the checkpoint


def test_each_materialisation_is_a_new_version_and_only_the_last_n_are_kept(setup, trained):
    """The base experiment (no training: fast) materialised three times with keep_versions 2."""
    keep_two = {"ops": {"checkpoint": {"config": {"keep_versions": 2}}}}
    experiment_dir = setup.layout.models.experiment_checkpoints("base")
    before = sorted(p.name for p in experiment_dir.glob("v*")) if experiment_dir.is_dir() else []
    for _ in range(3):
        again = setup.materialize([setup.checkpoint], "base", run_config=keep_two)
        assert again.success
    metadata = again.asset_materializations_for_node("checkpoint")[0].metadata
    after = sorted(p.name for p in experiment_dir.glob("v*"))
    assert len(after) == 2 and after[-1] == metadata["version"].value and after[0] > (before[-1] if before else "")
    assert metadata["pruned"].value == [f"v{int(after[0][1:]) - 1:04d}"]
