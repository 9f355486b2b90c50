"""The tiny offline Qwen2-VL, loading from disk, and the Qwen2-VL chat encoding shared by training and inference."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from ops.model.vlm import (
    IGNORE_INDEX,
    TinyQwen2VLSpec,
    build_tiny_qwen2vl,
    collate,
    encode_chat,
    generate,
    load_image,
    load_vlm,
)


def _image(seed: int, width: int = 200, height: int = 150) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def vlm(tiny_model_dir):
    return load_vlm(tiny_model_dir)


def test_tiny_model_is_a_real_qwen2vl_folder_and_rebuilds_byte_identically(tiny_model_dir, tmp_path):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"} <= names
    again = build_tiny_qwen2vl(tmp_path / "again")
    assert (again / "model.safetensors").read_bytes() == (tiny_model_dir / "model.safetensors").read_bytes()
    other = build_tiny_qwen2vl(tmp_path / "other", TinyQwen2VLSpec(seed=1))
    assert (other / "model.safetensors").read_bytes() != (tiny_model_dir / "model.safetensors").read_bytes()


def test_tokenizer_is_the_real_qwen_bpe_with_qwen2vl_vision_ids(vlm):
    ids = vlm.tokenizer.convert_tokens_to_ids(["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|im_start|>"])
    assert ids == [151652, 151653, 151655, 151644]  # docs/REFERENCE.md §4.1
    assert vlm.model.config.image_token_id == 151655


def test_encoding_expands_each_placeholder_and_labels_only_the_answer(vlm):
    images = [_image(0), _image(1, 100, 100)]
    encoded = encode_chat(vlm, "<image><image>Where is the lamp?", images, answer="<OBJ012>.")
    grids = encoded["image_grid_thw"]
    pads = int((encoded["input_ids"] == 151655).sum())
    assert pads == int(sum(g.prod() for g in grids)) // vlm.merge_size**2
    assert int((encoded["input_ids"] == 151652).sum()) == 2
    assert torch.equal(encoded["mm_token_type_ids"].bool(), encoded["input_ids"] == 151655)
    learnt = encoded["labels"][encoded["labels"] != IGNORE_INDEX]
    assert vlm.tokenizer.decode(learnt) == "<OBJ012>.<|im_end|>\n"
    text = vlm.tokenizer.decode(encoded["input_ids"])
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert text.endswith("Where is the lamp?<|im_end|>\n<|im_start|>assistant\n<OBJ012>.<|im_end|>\n")


def test_placeholder_count_must_match_the_images(vlm):
    with pytest.raises(ValueError, match="1 <image> placeholders for 2 images"):
        encode_chat(vlm, "<image>Where?", [_image(0), _image(1)])


def test_images_are_capped_on_the_long_side_with_nearest(tmp_path):
    buffer = io.BytesIO()
    _image(3, 1296, 968).save(buffer, format="JPEG")
    image = load_image(buffer.getvalue(), max_side=512)
    assert image.size == (512, 382)  # int(968 * 512 / 1296) = 382
    small = tmp_path / "small.png"
    _image(4, 64, 48).save(small)
    assert load_image(small).size == (64, 48)


def test_training_batch_gives_a_finite_loss_and_left_padded_generation_matches_single(vlm):
    features = [
        encode_chat(vlm, "<image>Colour?", [_image(5)], answer="Brown."),
        encode_chat(vlm, "<image><image>Which?", [_image(6), _image(7)], answer="<OBJ001>."),
    ]
    batch = collate(features, vlm.tokenizer.pad_token_id)
    assert batch["input_ids"].shape[0] == 2 and batch["image_grid_thw"].shape == (3, 3)
    loss = vlm.model(**batch).loss
    assert torch.isfinite(loss) and loss.item() > 0
    conversations = [("<image>Colour?", [_image(5)]), ("<image><image>Which one is it?", [_image(6), _image(7)])]
    batched = generate(vlm, conversations, max_new_tokens=4)
    assert batched == [generate(vlm, [c], max_new_tokens=4)[0] for c in conversations]


def test_loading_a_folder_that_is_not_a_model_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json: not a saved Hugging Face model folder"):
        load_vlm(tmp_path)
