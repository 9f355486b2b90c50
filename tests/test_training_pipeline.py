"""Training through Dagster: the real launchers (torchrun and deepspeed, DeepSpeed ZeRO-2 on CPU via gloo) train
the tiny Qwen2-VL on shards built by the real dataset assets; lineage, staleness, resume after a kill, a
fresh-process PeftModel load, and full fine-tuning under ZeRO-3 from the bare entry point.

One module-scoped storage root and Dagster instance: the first run trains, later tests read it; the staleness test
rebuilds the shards (with another seed), and the kill/resume test then trains a second recipe on those.
DeepSpeed JIT-compiles its shm_comm op once per TORCH_EXTENSIONS_DIR (about 30 s, the first time only).
"""

from __future__ import annotations

import json
import os
import shutil
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

from assets.dataset import task_samples, training_shards
from assets.training import base_model, build_checkpoint_asset
from ops.dataset.shards import read_manifest
from ops.model.training.trainer import last_complete_checkpoint
from resources.storage import StorageRoot
from resources.training import PROJECT_DIR, BaseModelSource, TrainingLauncher

pytestmark = pytest.mark.slow

TINY = PROJECT_DIR / "recipes" / "tiny_cpu_lora.yaml"
DS_Z2 = PROJECT_DIR / "recipes" / "deepspeed" / "ds_z2_config.json"


def _recipe(tmp: Path, name: str, **values) -> Path:
    """The tiny recipe with some values replaced (same layout and comments)."""
    values = {"deepspeed": str(DS_Z2), **values}
    lines = []
    for line in TINY.read_text().splitlines():
        key = line.split(":", 1)[0]
        lines.append(f"{key}: {values[key]}" if key in values and not line.startswith("#") else line)
    path = tmp / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def setup(prepared_scenes, tmp_path_factory):
    base = tmp_path_factory.mktemp("training")
    shutil.copytree(prepared_scenes.root, base / "root")
    storage = StorageRoot(root=str(base / "root"), raw_root=str(prepared_scenes.raw))
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([task_samples, training_shards], resources={"storage": storage}, instance=instance).success
    return base, storage, instance


def _materialize(assets, storage, instance, launcher: TrainingLauncher, **kwargs):
    resources = {"storage": storage, "base_model_source": BaseModelSource(), "training_launcher": launcher}
    return dg.materialize(assets, instance=instance, raise_on_error=False, resources=resources, **kwargs)


@pytest.fixture(scope="module")
def trained(setup):
    """base_model + checkpoint through torchrun with DeepSpeed ZeRO-2, 16 steps of 2 rows."""
    base, storage, instance = setup
    recipe = _recipe(
        base,
        "torchrun_z2.yaml",
        per_device_train_batch_size=2,
        max_steps=16,
        learning_rate="1.0e-2",
        save_steps=8,
        logging_steps=4,
    )
    checkpoint, checks = build_checkpoint_asset(recipe)
    started = time.perf_counter()
    result = _materialize([base_model, checkpoint, *checks], storage, instance, TrainingLauncher(launcher="torchrun"))
    print(f"torchrun + ZeRO-2 materialisation: {time.perf_counter() - started:.1f} s")
    return storage, instance, checkpoint, checks, result


def test_torchrun_zero2_training_lowers_the_loss_and_records_lineage(trained):
    storage, instance, checkpoint, checks, result = trained
    assert result.success
    metadata = result.asset_materializations_for_node("checkpoint")[0].metadata
    first, final = metadata["first_loss"].value, metadata["final_loss"].value
    print(
        f"loss {first:.3f} -> {final:.3f} in {metadata['global_step'].value} steps, "
        f"{metadata['tokens_per_second'].value} tokens/s, {metadata['samples_per_second'].value} samples/s"
    )
    assert metadata["global_step"].value == 16 and final < first - 3.0
    assert metadata["progress_messages"].value == 5  # rank 0's Pipes messages: steps 1, 4, 8, 12, 16
    assert metadata["loss_curve"].value.startswith("![loss curve](data:image/png;base64,")
    out = storage.root_path / "models" / "checkpoint"
    assert {"adapter_config.json", "adapter_model.safetensors", "lineage.json", "loss_curve.png"} <= {
        p.name for p in out.iterdir()
    }
    lineage = json.loads((out / "lineage.json").read_text())
    shards_version = read_manifest(storage.dataset.train_shards()).data_version
    assert lineage["shards"]["data_version"] == metadata["shards_data_version"].value == shards_version
    assert lineage["recipe"]["hash"] == checkpoint.code_versions_by_key[dg.AssetKey("checkpoint")]
    assert lineage["recipe"]["deepspeed_config"]["zero_optimization"]["stage"] == 2
    assert lineage["final_metrics"]["deepspeed_stage"] == 2 and lineage["final_metrics"]["precision"] == "fp32"
    assert lineage["base_model"]["path"] == str(storage.root_path / "models" / "base")
    assert len(lineage["code_commit"].split("-")[0]) == 40 or lineage["code_commit"] == "unknown"
    checks_passed = {
        e.event_specific_data.check_name: e.event_specific_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert checks_passed == {"checkpoint_loads": True, "loss_decreased": True}
    # Dagster recorded the shards' data version as the checkpoint's input.
    record = instance.get_latest_data_version_record(dg.AssetKey("checkpoint"))
    tags = record.event_log_entry.asset_materialization.tags
    assert tags["dagster/input_data_version/training_shards"] == shards_version


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


def test_adapter_loads_in_a_fresh_process_with_plain_peft_and_generates(trained):
    storage = trained[0]
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH_PROCESS,
            str(storage.root_path / "models" / "base"),
            str(storage.root_path / "models" / "checkpoint"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    answer_line = [line for line in out.stdout.splitlines() if line.startswith("ANSWER")][0]
    assert int(answer_line.rsplit(" ", 1)[1]) >= 1


def test_full_finetuning_with_zero3_trains_the_language_model_only_and_saves_a_loadable_model(setup, tiny_model_dir):
    """The entry point run alone (no launcher: it sets up a world of one), full fine-tuning under ZeRO-3."""
    import safetensors.torch

    from ops.model.vlm import generate, load_vlm

    base, storage, _ = setup
    recipe = base / "full_z3.yaml"
    recipe.write_text(
        f"finetuning_type: full\ndeepspeed: {DS_Z2.parent / 'ds_z3_config.json'}\nmax_steps: 3\n"
        "per_device_train_batch_size: 2\nlearning_rate: 1.0e-3\nlogging_steps: 1\nsave_steps: 100\n"
    )
    run_dir = base / "full_run"
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
            str(storage.dataset.train_shards()),
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


def test_checkpoint_goes_stale_when_the_shards_change(setup, trained):
    _, storage, instance = setup
    checkpoint = trained[2]
    graph_assets = [task_samples, training_shards, base_model, checkpoint]
    key = dg.AssetKey("checkpoint")
    assert get_stale_status_resolver(instance, graph_assets).get_status(key) == StaleStatus.FRESH
    before = read_manifest(storage.dataset.train_shards()).data_version
    rebuilt = dg.materialize(
        [task_samples, training_shards],
        resources={"storage": storage},
        instance=instance,
        run_config={"ops": {"task_samples": {"config": {"seed": 1}}}},
    )
    assert rebuilt.success
    assert read_manifest(storage.dataset.train_shards()).data_version != before
    resolver = get_stale_status_resolver(instance, graph_assets)
    assert resolver.get_status(key) == StaleStatus.STALE
    causes = resolver.get_stale_causes(key)
    assert any(c.dependency and c.dependency.asset_key == dg.AssetKey("training_shards") for c in causes), causes


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
    base, storage, instance = setup
    recipe = _recipe(
        base,
        "deepspeed_z2.yaml",
        per_device_train_batch_size=2,
        max_steps=12,
        save_steps=4,
        logging_steps=2,
        learning_rate="1.0e-2",
    )
    checkpoint, checks = build_checkpoint_asset(recipe)
    launcher = TrainingLauncher(launcher="deepspeed")
    killed: dict = {}
    runs = storage.root_path / "models" / "runs"
    runs_before = {p.name for p in runs.iterdir()}
    watcher = threading.Thread(target=_kill_worker_after, args=(runs, runs_before, 4, killed))
    watcher.start()
    first = _materialize([checkpoint], storage, instance, launcher)
    watcher.join()
    assert "pid" in killed and not first.success
    failure = next(e for e in first.all_events if e.event_type_value == "STEP_FAILURE")
    print("failure of the killed run:", failure.event_specific_data.error.message.strip().splitlines()[-1][:300])

    second = _materialize([checkpoint, *checks], storage, instance, launcher)
    assert second.success
    metadata = second.asset_materializations_for_node("checkpoint")[0].metadata
    resumed_from = metadata["resumed_from"].value
    assert resumed_from.startswith("checkpoint-") and int(resumed_from.split("-")[1]) >= 4
    assert metadata["global_step"].value == 12
    (run_dir,) = {p for p in runs.iterdir() if p.name not in runs_before}
    history = json.loads((run_dir / "final" / "train_summary.json").read_text())["log_history"]
    assert [h["step"] for h in history] == [1, 2, 4, 6, 8, 10, 12]  # steps before the kill came from the checkpoint
    print(
        f"killed at {killed['checkpoint']}, resumed from {resumed_from}; loss {history[0]['loss']:.3f} -> "
        f"{history[-1]['loss']:.3f}"
    )
