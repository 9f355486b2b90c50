"""Fine-tuning a VLM from a local folder with the Hugging Face Trainer: LoRA (PEFT) or full, optional DeepSpeed.

One process per GPU (or one on CPU) runs ``train``; the launcher (torchrun or deepspeed) sets ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE``. Everything a run writes goes under ``run_dir``:

    run_dir/checkpoint-<step>/   Trainer checkpoints (weights/adapter, optimizer, scheduler, RNG, trainer_state.json)
    run_dir/final/               the trained adapter (PEFT files) or full weights (+ tokenizer, image processor)
    run_dir/final/train_summary.json   metrics and the loss history of the whole run (resumed parts included)

A run resumes from the newest *complete* checkpoint in ``run_dir`` (the Trainer writes ``trainer_state.json``
last, so a checkpoint without it was cut off mid-save and is skipped); a run whose ``final/`` summary exists is done
and returns it without training (resuming the Trainer at its last step would train one step more). Precision:
bf16 on GPU when the recipe asks for it, fp32 on CPU. The loss covers assistant tokens only
(``ops.model.vlm.encode_chat`` labels).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.core.atomic import write_json
from ops.model.training.data import ShardDataset, row_encoder, training_collator
from ops.model.training.recipe import LoadedRecipe, Recipe, load_recipe
from ops.model.training.reporting import Reporter
from ops.model.vlm import IGNORE_INDEX, load_vlm

FINAL_DIR = "final"
# Recipe keys passed to transformers' TrainingArguments under the same name.
_TRAINING_ARGUMENTS = (
    "per_device_train_batch_size",
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "lr_scheduler_type",
    "weight_decay",
    "max_grad_norm",
    "gradient_checkpointing",
    "logging_steps",
    "save_steps",
    "save_total_limit",
    "seed",
    "dataloader_num_workers",
)
SUMMARY_FILE = "train_summary.json"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
# Files of the base model copied beside full fine-tuned weights, so the checkpoint loads on its own.
PROCESSOR_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "vocab.json",
    "merges.txt",
    "generation_config.json",
)


@dataclass(frozen=True)
class TrainRequest:
    """What one training run reads and where it writes."""

    recipe_path: Path
    model_dir: Path
    shards_dir: Path
    run_dir: Path
    image_root: Path | None = None


def last_complete_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest ``checkpoint-<step>`` folder holding ``trainer_state.json``, or None."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    steps = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name)) and p.is_dir()]
    complete = [(step, p) for step, p in steps if (p / "trainer_state.json").is_file()]
    return max(complete)[1] if complete else None


def lora_target_pattern(model: Any, recipe: Recipe) -> str:
    """PEFT ``target_modules`` regex: the recipe's linear layers, never ``lm_head`` or the merger, and not the vision
    tower while it is frozen (LLaMA-Factory's ``lora_target: all`` for Qwen2-VL)."""
    import torch

    excluded = ["lm_head", "merger"] + (["visual"] if recipe.freeze_vision_tower else [])
    if recipe.lora_target == "all":
        names = sorted(
            {
                name.rsplit(".", 1)[-1]
                for name, module in model.named_modules()
                if isinstance(module, torch.nn.Linear) and not any(x in name for x in excluded)
            }
        )
    else:
        names = sorted(n.strip() for n in recipe.lora_target.split(",") if n.strip())
    if not names:
        raise ValueError(f"lora_target {recipe.lora_target!r} matches no linear layer")
    return rf"^(?!.*(?:{'|'.join(excluded)})).*\.(?:{'|'.join(map(re.escape, names))})$"


def prepare_model(model: Any, recipe: Recipe) -> Any:
    """Wrap ``model`` for the recipe's fine-tuning type: a PEFT LoRA model, or the model with (by default) the
    vision tower frozen."""
    if recipe.finetuning_type == "lora":
        from peft import LoraConfig, get_peft_model

        modules_to_save = [n.strip() for n in recipe.additional_target.split(",") if n.strip()] or None
        config = LoraConfig(
            r=recipe.lora_rank,
            lora_alpha=recipe.lora_alpha,
            lora_dropout=recipe.lora_dropout,
            target_modules=lora_target_pattern(model, recipe),
            modules_to_save=modules_to_save,
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, config)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = not (recipe.freeze_vision_tower and "visual" in name)
    return model


def _attn_implementation(recipe: Recipe, on_gpu: bool) -> str:
    if recipe.flash_attn in ("auto", "fa2"):
        return "flash_attention_2" if on_gpu and recipe.flash_attn == "fa2" else "sdpa"
    return recipe.flash_attn


def answer_token_loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
    """Cross-entropy of the answer tokens, from the logits of the kept positions only (``training_collator``'s
    ``logits_to_keep``, flattened in row-major order), summed and divided by the learnt tokens of the whole
    accumulated batch (the Trainer's ``num_items_in_batch``), or averaged when that is unknown."""
    import torch

    targets = labels[:, 1:][labels[:, 1:] != IGNORE_INDEX]
    loss = torch.nn.functional.cross_entropy(outputs.logits.float(), targets.to(outputs.logits.device), reduction="sum")
    return loss / (num_items_in_batch if num_items_in_batch is not None else max(targets.numel(), 1))


def _report_callback(reporter: Reporter, global_batch: int):
    from transformers import TrainerCallback

    class ReportCallback(TrainerCallback):
        """Rank 0: one progress record per logging step (loss, lr, tokens/s and samples/s over the interval)."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.mark = (time.perf_counter(), state.global_step, state.num_input_tokens_seen)
            self.began = self.mark

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            now, step, tokens = time.perf_counter(), state.global_step, state.num_input_tokens_seen
            seconds = max(now - self.mark[0], 1e-9)
            reporter.progress(
                {
                    "step": step,
                    "max_steps": state.max_steps,
                    "loss": float(logs["loss"]),
                    "learning_rate": float(logs.get("learning_rate", 0.0)),
                    "tokens_per_second": (tokens - self.mark[2]) / seconds,
                    "samples_per_second": (step - self.mark[1]) * global_batch / seconds,
                }
            )
            self.mark = (now, step, tokens)

    return ReportCallback()


def _loss_history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"step": e["step"], "loss": e["loss"], "learning_rate": e.get("learning_rate")}
        for e in log_history
        if "loss" in e
    ]


def train(request: TrainRequest, reporter: Reporter) -> dict[str, Any]:
    """Run (or resume) the fine-tuning of ``request``; return the summary rank 0 also writes to
    ``run_dir/final/train_summary.json``."""
    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    loaded: LoadedRecipe = load_recipe(request.recipe_path)
    recipe = loaded.recipe
    finished = Path(request.run_dir) / FINAL_DIR / SUMMARY_FILE
    if finished.is_file():  # written only after training completed; the run folder pins recipe, shards and base
        summary = json.loads(finished.read_text(encoding="utf-8"))
        reporter.log(f"{Path(request.run_dir).name} already trained ({summary['global_step']} steps): nothing to do")
        reporter.summary(summary)
        return summary
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    on_gpu = torch.cuda.is_available()
    bf16 = on_gpu and recipe.bf16
    set_seed(recipe.seed)  # before the LoRA layers are made: their initial weights come from this seed
    vlm = load_vlm(request.model_dir, dtype="bfloat16" if bf16 else "float32")
    vlm.model.set_attn_implementation(_attn_implementation(recipe, on_gpu))
    model = prepare_model(vlm.model, recipe)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    dataset = ShardDataset(
        request.shards_dir,
        row_encoder(vlm, recipe.image_resolution, recipe.cutoff_len),
        image_root=request.image_root,
        max_samples=recipe.max_samples,
    )
    accumulation = recipe.gradient_accumulation(world_size)
    global_batch = recipe.per_device_train_batch_size * accumulation * world_size
    args = TrainingArguments(
        **{name: getattr(recipe, name) for name in _TRAINING_ARGUMENTS},
        output_dir=str(request.run_dir),
        gradient_accumulation_steps=accumulation,
        warmup_steps=recipe.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        bf16=bf16,
        use_cpu=not on_gpu,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        deepspeed=str(loaded.deepspeed_path) if loaded.deepspeed_path else None,
        logging_first_step=True,
        train_sampling_strategy="sequential",  # the shards are already in a seeded random order
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        ddp_find_unused_parameters=False,
        report_to=[],
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=training_collator(vlm.tokenizer.pad_token_id),
        compute_loss_func=answer_token_loss,
        callbacks=[_report_callback(reporter, global_batch)],
    )
    resume = last_complete_checkpoint(request.run_dir)
    reporter.log(
        f"{loaded.path.name}: {recipe.finetuning_type} on {request.model_dir}, {len(dataset)} rows, "
        f"{trainable:,} of {total:,} parameters trainable, {world_size} process(es) on "
        f"{'GPU' if on_gpu else 'CPU'}, global batch {global_batch}, "
        f"{'resuming from ' + resume.name if resume else 'from scratch'}"
    )
    started = time.perf_counter()
    tokens_before = 0
    if resume is not None:
        tokens_before = json.loads((resume / "trainer_state.json").read_text()).get("num_input_tokens_seen", 0)
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - started
    final_dir = Path(request.run_dir) / FINAL_DIR
    if final_dir.exists() and trainer.is_world_process_zero():
        shutil.rmtree(final_dir)
    trainer.save_model(str(final_dir))
    history = _loss_history(trainer.state.log_history)
    summary: dict[str, Any] = {
        "global_step": trainer.state.global_step,
        "resumed_from": resume.name if resume else None,
        "first_loss": history[0]["loss"] if history else None,
        "final_loss": history[-1]["loss"] if history else None,
        "min_loss": min(h["loss"] for h in history) if history else None,
        "train_loss": float(result.training_loss),
        "seconds": round(seconds, 3),
        "num_input_tokens_seen": int(trainer.state.num_input_tokens_seen),
        "tokens_per_second": (trainer.state.num_input_tokens_seen - tokens_before) / max(seconds, 1e-9),
        "samples_per_second": float(result.metrics.get("train_samples_per_second", 0.0)),
        "steps_per_second": float(result.metrics.get("train_steps_per_second", 0.0)),
        "trainable_parameters": trainable,
        "total_parameters": total,
        "finetuning_type": recipe.finetuning_type,
        "world_size": world_size,
        "global_batch_size": global_batch,
        "device": "cuda" if on_gpu else "cpu",
        "precision": "bf16" if bf16 else "fp32",
        "deepspeed_stage": (loaded.deepspeed_config or {}).get("zero_optimization", {}).get("stage"),
        "recipe_hash": loaded.hash,
        "log_history": history,
    }
    if trainer.is_world_process_zero():
        if recipe.finetuning_type == "full":
            for name in PROCESSOR_FILES:
                if (Path(request.model_dir) / name).is_file():
                    shutil.copy2(Path(request.model_dir) / name, final_dir / name)
        write_json(final_dir / SUMMARY_FILE, summary)
        reporter.summary(summary)
    return summary
