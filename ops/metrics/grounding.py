"""Grounding metrics: ``<OBJ###>`` parsing, ScanRefer's chosen-proposal IoU and Multi3DRefer's Hungarian F1.

Semantics follow GPT4Scene's ``evaluate/utils/eval.py`` (a copy of Chat-Scene's): an answer names proposals by
ID, the ID selects a proposal box, and the box is compared with the ground-truth box by axis-aligned 3D IoU
(``ops.prompts.instances.box_iou_3d``). Boxes are centre xyz + size xyz, metres.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from ops.prompts.instances import box_iou_3d

OBJECT_ID_PATTERN = re.compile(r"<OBJ(\d{3})>")

Fallback = Literal["zero", "random", "miss"]
FALLBACKS: tuple[str, ...] = ("zero", "random", "miss")
MULTI3DREFER_EVAL_TYPES: tuple[str, ...] = ("zt_w_d", "zt_wo_d", "st_w_d", "st_wo_d", "mt")
ZERO_TARGET_EVAL_TYPES = frozenset({"zt_w_d", "zt_wo_d"})


def parse_object_ids(text: str, num_proposals: int) -> list[int]:
    """Every ``<OBJ###>`` in ``text``, left to right, keeping those below ``num_proposals``; duplicates stay."""
    return [int(match.group(1)) for match in OBJECT_ID_PATTERN.finditer(text) if int(match.group(1)) < num_proposals]


def select_scanrefer_id(
    text: str, num_proposals: int, fallback: Fallback = "zero", rng: np.random.Generator | None = None
) -> int | None:
    """The proposal a ScanRefer answer picks: its first valid ID. Without one, ``fallback`` decides: ``"zero"``
    (GPT4Scene: proposal 0), ``"random"`` (Chat-Scene: a proposal drawn from ``rng``) or ``"miss"`` (None). A
    scene without proposals always gives None."""
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown ScanRefer fallback {fallback!r}; expected one of {FALLBACKS}")
    ids = parse_object_ids(text, num_proposals)
    if ids:
        return ids[0]
    if num_proposals == 0 or fallback == "miss":
        return None
    if fallback == "zero":
        return 0
    if rng is None:
        raise ValueError("the 'random' fallback needs a seeded numpy Generator")
    return int(rng.integers(num_proposals))


def multi3drefer_f1(
    pred_boxes: np.ndarray, gt_boxes: np.ndarray, zero_target: bool, thresholds: Sequence[float]
) -> list[float]:
    """F1 of one Multi3DRefer query at each IoU threshold.

    Zero-target query: 1 if nothing is predicted, else 0. Otherwise the IoU matrix of predicted [P,6] against
    ground-truth [G,6] boxes is zero-padded to max(P,G) square, matched by the Hungarian algorithm (maximum total
    IoU), and TP@t counts matched pairs among the P predicted rows with IoU >= t; F1 = 2*TP / (P + G). Like the
    reference the matrix is float32, which decides ties at a threshold the same way.
    """
    pred_boxes = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 6)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 6)
    num_pred, num_gt = len(pred_boxes), len(gt_boxes)
    if zero_target:
        return [1.0 if num_pred == 0 else 0.0 for _ in thresholds]
    if num_gt == 0:
        raise ValueError("a query that is not zero-target needs at least one ground-truth box")
    size = max(num_pred, num_gt)
    iou = np.zeros((size, size), dtype=np.float32)
    iou[:num_pred, :num_gt] = box_iou_3d(pred_boxes[:, None], gt_boxes[None])
    rows, cols = linear_sum_assignment(-iou)  # rows come back sorted, so the first P pairs are the predictions
    matched = iou[rows[:num_pred], cols[:num_pred]]
    return [2.0 * int((matched >= t).sum()) / (num_pred + num_gt) for t in thresholds]
