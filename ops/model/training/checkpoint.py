"""A published checkpoint version: trained weights + ``lineage.json`` + ``loss_curve.png``, and what identifies a run.

Layout of ``<root>/models/checkpoints/<experiment>/<version>/`` (written whole through ``staging_dir``,
``lineage.json`` last)::

    adapter_config.json, adapter_model.safetensors   LoRA: load with PeftModel.from_pretrained(base, this folder)
    config.json, model*.safetensors, tokenizer...    full fine-tuning: load with from_pretrained(this folder)
    train_summary.json                               the trainer's metrics and loss history
    loss_curve.png                                   training loss per logged step
    lineage.json                                     experiment, version, shards data version, train scenes and
                                                     their data versions, recipe (+hash), base model, code
                                                     commit, date, final metrics
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ops.core.atomic import staging_dir, write_bytes, write_json
from ops.core.fingerprint import content_hash, file_sha256

LINEAGE_FILE = "lineage.json"
LOSS_CURVE_FILE = "loss_curve.png"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
CONTENT_HASH_LIMIT = 256 * 2**20  # model files up to this size are fingerprinted by content, larger by name + size


def code_commit(repo_dir: str | Path) -> str:
    """``git rev-parse HEAD`` of ``repo_dir`` (with ``-dirty`` when tracked files changed), or "unknown"."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo_dir,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def model_fingerprint(model_dir: str | Path) -> str:
    """sha256 identifying a saved model folder: every file's name and size, and the content of files up to
    ``CONTENT_HASH_LIMIT`` (config, tokenizer, small weights; a 7B model's weight shards go by name and size)."""
    model_dir = Path(model_dir)
    entries = []
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        size = path.stat().st_size
        entry = {"path": path.relative_to(model_dir).as_posix(), "bytes": size}
        if size <= CONTENT_HASH_LIMIT:
            entry["sha256"] = file_sha256(path)
        entries.append(entry)
    if not entries:
        raise FileNotFoundError(f"{model_dir}: empty or missing model folder")
    return content_hash(entries)


def run_name(experiment: str, experiment_hash: str, shards_version: str, base_fingerprint: str) -> str:
    """Folder name of the run training this experiment on these shards from this base: a rerun of the same
    resumes in the same folder, a change of any starts a new one."""
    return f"{experiment}-{experiment_hash[:12]}-{shards_version[:12]}-{base_fingerprint[:12]}"


def plot_loss_curve(history: Sequence[Mapping[str, Any]], title: str = "training loss") -> bytes:
    """PNG of loss against step (matplotlib, Agg; no timestamp in the file)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=100)
    axis.plot([h["step"] for h in history], [h["loss"] for h in history], marker="o", markersize=3)
    axis.set_xlabel("step")
    axis.set_ylabel("loss (answer tokens)")
    axis.set_title(title)
    axis.grid(True, alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def weights_kind(folder: str | Path) -> str:
    """``lora`` (PEFT adapter files), ``full`` (a model folder) — else a clear error naming the folder."""
    folder = Path(folder)
    if all((folder / name).is_file() for name in ADAPTER_FILES):
        return "lora"
    if (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
        return "full"
    raise FileNotFoundError(f"{folder}: neither a PEFT adapter ({', '.join(ADAPTER_FILES)}) nor full weights")


def publish_checkpoint(trained_dir: str | Path, out_dir: str | Path, lineage: Mapping[str, Any]) -> Path:
    """Copy the trained weights of ``trained_dir`` into ``out_dir`` (replacing it) with the loss curve and
    ``lineage.json``; nothing half-written is ever visible under ``out_dir``."""
    trained_dir = Path(trained_dir)
    weights_kind(trained_dir)
    summary = json.loads((trained_dir / "train_summary.json").read_text(encoding="utf-8"))
    with staging_dir(out_dir) as tmp:
        for path in sorted(trained_dir.iterdir()):
            if path.is_file():
                shutil.copy2(path, tmp / path.name)
        write_bytes(tmp / LOSS_CURVE_FILE, plot_loss_curve(summary["log_history"]))
        write_json(tmp / LINEAGE_FILE, dict(lineage))
    return Path(out_dir)
