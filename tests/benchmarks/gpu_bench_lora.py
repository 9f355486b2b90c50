"""GPU benchmark (not part of `make test` / `make bench`): LoRA fine-tuning step time and tokens/s of this
project's trainer against LLaMA-Factory's `llamafactory-cli train`, on the same data and settings, side by side.

    python tests/benchmarks/gpu_bench_lora.py --workdir /scratch/bench [--steps 30] [--gpus 1]

Setup it needs (a GPU machine): this project's venv with a CUDA torch, and LLaMA-Factory installed
(`pip install llamafactory`, `llamafactory-cli` on PATH; or --skip-llamafactory). Nothing is downloaded:
- the model is a randomly initialised Qwen2-VL in **Qwen2-VL-2B-Instruct's shape** (28 layers, hidden 1536, 12/2
  heads, intermediate 8960, 151,936-token vocabulary; vision tower 32 blocks of 1280, merger to 1536) with the real
  Qwen tokenizer, saved in bf16 to WORKDIR/model;
- the data are shards of synthetic scenes built by this project (9 images of up to 512 px per row, the GPT4Scene
  input), in the Parquet layout both trainers read (`dataset_info.json` beside them).
Both run LoRA r64 / alpha 128 on every linear layer of the language model (vision tower frozen), lr 1e-4, bf16,
per-device batch 1, no gradient accumulation, gradient checkpointing, `--steps` steps, under torchrun with
`--gpus` processes (DeepSpeed ZeRO-2 when --gpus > 1). Step time = train runtime / steps (the first steps,
compilation and warm-up, are included on both sides alike); tokens/s counts non-padding input tokens.

Status: unrun — the machine this was written on has no GPU and no LLaMA-Factory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

LORA = {"lora_rank": 64, "lora_alpha": 128, "lora_dropout": 0.0, "lora_target": "all"}


def build_model(out: Path) -> Path:
    """Random weights in Qwen2-VL-2B-Instruct's shape (its config.json values), real Qwen tokenizer, bf16."""
    import torch
    from transformers import AutoTokenizer, Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from ops.model.vlm import QWEN2VL_CHAT_TEMPLATE, qwen_tokenizer_dir

    if (out / "config.json").is_file():
        return out
    tokenizer = AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir()))
    tokenizer.chat_template = QWEN2VL_CHAT_TEMPLATE
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": 151936,
            "hidden_size": 1536,
            "intermediate_size": 8960,
            "num_hidden_layers": 28,
            "num_attention_heads": 12,
            "num_key_value_heads": 2,
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6,
            "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
            "bos_token_id": ids("<|endoftext|>"),
            "eos_token_id": ids("<|im_end|>"),
            "pad_token_id": ids("<|endoftext|>"),
        },
        vision_config={
            "depth": 32,
            "embed_dim": 1280,
            "hidden_size": 1536,
            "num_heads": 16,
            "mlp_ratio": 4,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "in_chans": 3,
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2VLForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=512 * 512).save_pretrained(out)
    return out


def build_shards(work: Path) -> Path:
    """Shards of 4 synthetic scenes: 8 marked frames + BEV at 512 px per row."""
    from ops.core.layout import StorageLayout
    from ops.dataset.build import build_dataset
    from ops.prompts.driver import PromptSettings, prepare_scene
    from ops.synthetic import generate_dataset

    shards = StorageLayout(work / "root").dataset.train_shards()
    if (shards / "manifest.json").is_file():
        return shards
    truth = generate_dataset(work / "raw", n_scenes=4, seed=0, n_frames=120)
    for scene_id in truth.train_ids + truth.val_ids:
        prepare_scene(
            work / "raw" / "scans" / scene_id,
            work / "root" / "scenes" / scene_id,
            PromptSettings(n_frames=8, image_resolution=512),
        )
    build_dataset(work / "root", work / "raw" / "scans", work / "raw" / "annotations", work / "root" / "dataset")
    return shards


def torchrun(gpus: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={gpus}", "--master_port=29611"]


def run_ours(work: Path, model: Path, shards: Path, steps: int, gpus: int) -> dict:
    recipe = work / "ours.yaml"
    ds = f"deepspeed: {REPO / 'recipes' / 'deepspeed' / 'ds_z2_config.json'}\n" if gpus > 1 else ""
    recipe.write_text(
        "finetuning_type: lora\n"
        + "".join(f"{k}: {v}\n" for k, v in LORA.items())
        + ds
        + f"image_resolution: 512\nflash_attn: sdpa\nper_device_train_batch_size: 1\nmax_steps: {steps}\n"
        "learning_rate: 1.0e-4\nlr_scheduler_type: cosine\nbf16: true\ngradient_checkpointing: true\n"
        "logging_steps: 1\nsave_steps: 100000\n"
    )
    run_dir = work / "ours_run"
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    entry = [
        "-m",
        "ops.model.training",
        "--recipe",
        str(recipe),
        "--model",
        str(model),
        "--shards",
        str(shards),
        "--run-dir",
        str(run_dir),
    ]
    subprocess.run(torchrun(gpus) + entry, cwd=REPO, check=True)
    summary = json.loads((run_dir / "final" / "train_summary.json").read_text())
    return {
        "wall_s": time.perf_counter() - started,
        "train_s": summary["seconds"],
        "steps": summary["global_step"],
        "tokens": summary["num_input_tokens_seen"],
        "final_loss": summary["final_loss"],
    }


def run_llamafactory(work: Path, model: Path, shards: Path, steps: int, gpus: int, cli: str) -> dict:
    name = next(iter(json.loads((shards / "dataset_info.json").read_text())))
    out = work / "llamafactory_run"
    shutil.rmtree(out, ignore_errors=True)
    config = {
        "model_name_or_path": str(model),
        "image_max_pixels": 512 * 512,
        "trust_remote_code": True,
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        **LORA,
        "dataset_dir": str(shards),
        "dataset": name,
        "template": "qwen2_vl",
        "cutoff_len": 32768,
        "overwrite_cache": True,
        "preprocessing_num_workers": 4,
        "output_dir": str(out),
        "logging_steps": 1,
        "save_steps": 100000,
        "report_to": "none",
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 1,
        "learning_rate": 1e-4,
        "max_steps": steps,
        "lr_scheduler_type": "cosine",
        "bf16": True,
        "include_num_input_tokens_seen": True,
    }
    if gpus > 1:
        config["deepspeed"] = str(REPO / "recipes" / "deepspeed" / "ds_z2_config.json")
    path = work / "llamafactory.json"
    path.write_text(json.dumps(config, indent=1))
    env = {**os.environ, "FORCE_TORCHRUN": "1" if gpus > 1 else "0", "NPROC_PER_NODE": str(gpus)}
    started = time.perf_counter()
    subprocess.run([cli, "train", str(path)], cwd=work, env=env, check=True)
    results = json.loads((out / "train_results.json").read_text())
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    return {
        "wall_s": time.perf_counter() - started,
        "train_s": results["train_runtime"],
        "steps": state["global_step"],
        "tokens": state.get("num_input_tokens_seen", 0),
        "final_loss": losses[-1] if losses else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--gpus", type=int, default=1)
    parser.add_argument("--llamafactory-cli", default=shutil.which("llamafactory-cli") or "llamafactory-cli")
    parser.add_argument("--skip-llamafactory", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    model, shards = build_model(work / "model"), build_shards(work)
    results = {"ours (ops.model.training)": run_ours(work, model, shards, args.steps, args.gpus)}
    if not args.skip_llamafactory:
        results["llamafactory-cli train"] = run_llamafactory(
            work, model, shards, args.steps, args.gpus, args.llamafactory_cli
        )
    print(f"\nLoRA r64, Qwen2-VL-2B shape (random), {args.gpus} GPU(s), {args.steps} steps, batch 1 per GPU")
    print(f"{'trainer':<24} {'step s':>8} {'tokens/s':>10} {'samples/s':>10} {'final loss':>10}")
    for name, r in results.items():
        print(
            f"{name:<24} {r['train_s'] / r['steps']:>8.3f} {r['tokens'] / r['train_s']:>10.0f} "
            f"{r['steps'] * args.gpus / r['train_s']:>10.2f} {r['final_loss'] or float('nan'):>10.3f}"
        )
    if len(results) == 2:
        ours, theirs = results.values()
        ratio = (ours["train_s"] / ours["steps"]) / (theirs["train_s"] / theirs["steps"])
        print(f"step-time ratio ours / LLaMA-Factory: {ratio:.2f}")
    (work / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
