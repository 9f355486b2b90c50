"""Zero-shot messages (2x4 grid + BEV, system prompt) and the answer post-processing, by hand-written cases."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from ops.model.inference import read_eval_rows
from ops.model.zero_shot import (
    SYSTEM_PROMPT,
    build_messages,
    postprocess_answer,
    singular,
    strip_formatting,
    zero_shot_images,
)


@pytest.mark.parametrize(
    ("task", "raw", "expected"),
    [
        ("scanqa", "**Brown.**", "brown"),
        ("scanqa", "Answer: Two chairs. They are by the window.", "two chair"),
        ("sqa3d", "`Yes`", "yes"),
        ("scanqa", "Boxes", "box"),
        ("scanqa", "Shelves", "shelf"),
        ("scanqa", "glass", "glass"),
        ("scanqa", "", ""),
        ("scanrefer", "The chair is <OBJ012>, next to <OBJ003>.", "<OBJ012>."),
        ("scanrefer", "Image 2 shows it: object 7.", "<OBJ007>."),  # "Image 2" is an image reference, not an ID
        ("scanrefer", "I cannot tell.", "I cannot tell."),  # no ID: the scorer's fallback decides
        ("multi3drefer", "No, nothing matches.", "No."),
        ("multi3drefer", "Yes:\n1. object 5\n2. object 3\n3. object 5", "Yes. <OBJ003> and <OBJ005>."),
        ("multi3drefer", "Img_4 and Img_6 show <OBJ010>", "Yes. <OBJ010>."),
        ("scan2cap", "## A brown chair.\nIt stands by the desk.", "A brown chair. It stands by the desk."),
    ],
)
def test_postprocess_answer(task, raw, expected):
    assert postprocess_answer(task, raw) == expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("chairs", "chair"),
        ("bodies", "body"),
        ("dishes", "dishes"),
        ("benches", "bench"),
        ("yes", "yes"),
        ("bus", "bus"),
        ("this", "this"),
        ("cups", "cup"),
    ],
)
def test_singular(word, expected):
    assert singular(word) == expected


def test_strip_formatting():
    assert strip_formatting('"**Final answer:** the lamp"') == "the lamp"


def _png(data_url: str) -> np.ndarray:
    data = base64.b64decode(data_url.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def test_messages_hold_the_grid_then_the_bev(eval_data):
    marked = read_eval_rows(eval_data.eval_dirs["marked"])[0]
    messages = build_messages(marked, "marked")
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    parts = messages[1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    grid, bev = _png(parts[0]["image_url"]["url"]), _png(parts[1]["image_url"]["url"])
    frame = cv2.imdecode(np.frombuffer(marked.images[1], np.uint8), cv2.IMREAD_COLOR)
    h, w = frame.shape[:2]
    assert grid.shape[:2] == (2 * h + 4, 4 * w + 3 * 4)  # 2x4 cells with 4 px gaps
    assert np.array_equal(grid[:h, :w], frame)  # the first cell is the first frame, untouched
    assert bev.shape[:2] == cv2.imdecode(np.frombuffer(marked.images[0], np.uint8), cv2.IMREAD_COLOR).shape[:2]
    assert parts[2]["text"].startswith(marked.prompt.strip()) and "<OBJ" in parts[2]["text"]

    unmarked = read_eval_rows(eval_data.eval_dirs["unmarked"])[0]
    assert len(zero_shot_images(unmarked, "unmarked")) == 1  # the raw-frame grid only
    with pytest.raises(ValueError, match="variant"):
        zero_shot_images(marked, "bev_only")
