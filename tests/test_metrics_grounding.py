"""ID parsing, ScanRefer accuracy and Multi3DRefer F1 against hand-computed values.

Boxes are centre xyz + size xyz. Two 2 m cubes whose centres are 1 m apart along x overlap in 1x2x2 = 4 m^3,
union 8 + 8 - 4 = 12 m^3: IoU = 1/3, a hit at 0.25 and a miss at 0.5.
"""

from __future__ import annotations

import numpy as np
import pytest

from ops.metrics.benchmarks import Multi3DReferItem, ScanReferItem, score_multi3drefer, score_scanrefer
from ops.metrics.grounding import multi3drefer_f1, parse_object_ids, select_scanrefer_id

GT_A = [0.0, 0.0, 0.0, 2.0, 2.0, 2.0]
GT_B = [5.0, 0.0, 0.0, 2.0, 2.0, 2.0]
NEAR_A = [1.0, 0.0, 0.0, 2.0, 2.0, 2.0]  # IoU 1/3 with GT_A
FAR = [20.0, 0.0, 0.0, 2.0, 2.0, 2.0]  # IoU 0 with everything


@pytest.mark.parametrize(
    ("text", "num_proposals", "expected"),
    [
        ("<OBJ001> and <OBJ002>.", 3, [1, 2]),
        ("Yes. <OBJ003>, <OBJ004>, and <OBJ009>.", 10, [3, 4, 9]),
        ("<OBJ005> <OBJ001> <OBJ001>", 3, [1, 1]),  # out of range dropped, duplicates kept
        ("<OBJ099>", 100, [99]),
        ("<OBJ099>", 99, []),
        ("OBJ001 <OBJ1> <OBJ0012> <obj001> <OBJ01> 7", 100, []),
        ("No.", 100, []),
    ],
)
def test_parse_object_ids(text: str, num_proposals: int, expected: list[int]) -> None:
    assert parse_object_ids(text, num_proposals) == expected


def test_select_scanrefer_id_fallbacks() -> None:
    assert select_scanrefer_id("<OBJ005> then <OBJ002>", 3) == 2
    assert select_scanrefer_id("the chair", 3, "zero") == 0
    assert select_scanrefer_id("the chair", 3, "miss") is None
    assert select_scanrefer_id("<OBJ000>", 0, "zero") is None  # no proposals: always a miss
    draws = {select_scanrefer_id("?", 5, "random", np.random.default_rng(seed)) for seed in range(40)}
    assert draws <= set(range(5)) and len(draws) > 1
    with pytest.raises(ValueError, match="unknown ScanRefer fallback"):
        select_scanrefer_id("?", 3, "first")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seeded numpy Generator"):
        select_scanrefer_id("?", 3, "random")


SCANREFER_PROPOSALS = np.array([NEAR_A, GT_A, FAR])


def _scanrefer_items() -> tuple[dict[str, str], list[ScanReferItem]]:
    cases = [  # id, answer, unique
        ("exact", "<OBJ001>.", True),  # IoU ~1: hit, hit
        ("near", "<OBJ000>", True),  # IoU 1/3: hit, miss
        ("no_id", "I am not sure.", False),  # fallback
        ("out_of_range", "<OBJ007> <OBJ002>", False),  # 7 >= 3 skipped, 2 is FAR: miss, miss
        ("duplicate", "<OBJ001><OBJ001><OBJ000>", False),  # first valid is 1: hit, hit
    ]
    predictions = {item_id: text for item_id, text, _ in cases}
    items = [ScanReferItem(item_id, GT_A, SCANREFER_PROPOSALS, unique) for item_id, _, unique in cases]
    return predictions, items


def test_score_scanrefer_zero_fallback() -> None:
    predictions, items = _scanrefer_items()
    # "no_id" falls back to proposal 0 = NEAR_A: hit at 0.25, miss at 0.5
    assert score_scanrefer(predictions, items) == pytest.approx(
        {
            "acc@0.25": 4 / 5,
            "acc@0.50": 2 / 5,
            "unique_acc@0.25": 2 / 2,
            "unique_acc@0.50": 1 / 2,
            "multiple_acc@0.25": 2 / 3,
            "multiple_acc@0.50": 1 / 3,
        }
    )


def test_score_scanrefer_miss_fallback() -> None:
    predictions, items = _scanrefer_items()
    assert score_scanrefer(predictions, items, fallback="miss") == pytest.approx(
        {
            "acc@0.25": 3 / 5,
            "acc@0.50": 2 / 5,
            "unique_acc@0.25": 2 / 2,
            "unique_acc@0.50": 1 / 2,
            "multiple_acc@0.25": 1 / 3,
            "multiple_acc@0.50": 1 / 3,
        }
    )


def test_score_scanrefer_random_fallback_is_seeded() -> None:
    proposals = np.array([FAR, GT_A, GT_A, GT_A])  # only proposal 0 misses
    items = [ScanReferItem(f"q{i}", GT_A, proposals, unique=True) for i in range(200)]
    assert score_scanrefer({}, items, fallback="zero")["acc@0.25"] == 0.0
    first = score_scanrefer({}, items, fallback="random", seed=3)
    assert first == score_scanrefer({}, items, fallback="random", seed=3)
    rng = np.random.default_rng(3)  # one draw per answer without an ID, in item order
    expected = np.mean([rng.integers(4) != 0 for _ in items])
    assert first["acc@0.25"] == pytest.approx(expected)
    assert 0.6 < first["acc@0.25"] < 0.9
    assert "multiple_acc@0.25" not in first  # no multiple items: no key


def test_multi3drefer_f1_uses_optimal_matching() -> None:
    # 1x1 m cross-sections, so IoU is the overlap of the x intervals: A [0,2], B [2,4], X [1,3].
    a = [1.0, 0.5, 0.5, 2.0, 1.0, 1.0]
    b = [3.0, 0.5, 0.5, 2.0, 1.0, 1.0]
    x = [2.0, 0.5, 0.5, 2.0, 1.0, 1.0]  # IoU 1/3 with A and with B
    # Optimal: X->B (1/3), A->A (1): TP@0.25 = 2, TP@0.5 = 1; F1 = 2*TP/(2+2).
    assert multi3drefer_f1(np.array([x, a]), np.array([a, b]), False, (0.25, 0.5)) == pytest.approx([1.0, 0.5])
    # One prediction, two targets: only its row counts; F1 = 2*1/(1+2) at 0.25.
    assert multi3drefer_f1(np.array([x]), np.array([a, b]), False, (0.25, 0.5)) == pytest.approx([2 / 3, 0.0])
    assert multi3drefer_f1(np.zeros((0, 6)), np.array([a]), False, (0.25,)) == [0.0]
    assert multi3drefer_f1(np.zeros((0, 6)), np.zeros((0, 6)), True, (0.25,)) == [1.0]
    assert multi3drefer_f1(np.array([a]), np.zeros((0, 6)), True, (0.25,)) == [0.0]


def test_score_multi3drefer_overall_and_per_type() -> None:
    proposals = np.array([GT_A, GT_B, NEAR_A, FAR])
    cases = [  # id, eval type, GT boxes, answer;  F1@0.25, F1@0.5 by hand
        ("zt_none", "zt_wo_d", [], "No."),  # 1, 1
        ("zt_pred", "zt_w_d", [], "Yes. <OBJ001>."),  # 0, 0
        ("zt_invalid", "zt_w_d", [], "Yes. <OBJ042>."),  # invalid ID = nothing predicted: 1, 1
        ("st_hit", "st_w_d", [GT_A], "Yes. <OBJ000>."),  # 1, 1
        ("st_miss", "st_wo_d", [GT_A], "Yes. <OBJ003>."),  # 0, 0
        ("st_near", "st_wo_d", [GT_A], "<OBJ009> <OBJ002>"),  # 9 invalid; NEAR_A: 1, 0
        ("mt_dup", "mt", [GT_A, GT_B], "Yes. <OBJ000> and <OBJ000>."),  # one TP of 2+2: 0.5, 0.5
        ("mt_extra", "mt", [GT_A, GT_B], "Yes. <OBJ000>, <OBJ001>, and <OBJ003>."),  # 2*2/(3+2): 0.8, 0.8
        ("mt_none", "mt", [GT_A, GT_B], "No."),  # 0, 0
    ]
    predictions = {item_id: text for item_id, _, _, text in cases}
    items = [Multi3DReferItem(item_id, np.array(gt).reshape(-1, 6), proposals, kind) for item_id, kind, gt, _ in cases]
    assert score_multi3drefer(predictions, items) == pytest.approx(
        {
            "f1@0.25": (1 + 0 + 1 + 1 + 0 + 1 + 0.5 + 0.8 + 0) / 9,
            "f1@0.50": (1 + 0 + 1 + 1 + 0 + 0 + 0.5 + 0.8 + 0) / 9,
            "zt_w_d_f1@0.25": 1 / 2,
            "zt_w_d_f1@0.50": 1 / 2,
            "zt_wo_d_f1@0.25": 1.0,
            "zt_wo_d_f1@0.50": 1.0,
            "st_w_d_f1@0.25": 1.0,
            "st_w_d_f1@0.50": 1.0,
            "st_wo_d_f1@0.25": 1 / 2,
            "st_wo_d_f1@0.50": 0.0,
            "mt_f1@0.25": 1.3 / 3,
            "mt_f1@0.50": 1.3 / 3,
        }
    )


def test_grounding_items_refuse_bad_input() -> None:
    proposals = np.array([GT_A])
    with pytest.raises(ValueError, match="gt_box must be one box"):
        ScanReferItem("q", [0.0, 0.0, 0.0], proposals, unique=True)
    with pytest.raises(ValueError, match=r"proposal_boxes must be \[N,6\]"):
        ScanReferItem("q", GT_A, np.zeros((2, 3)), unique=True)
    with pytest.raises(ValueError, match="eval_type 'multi'"):
        Multi3DReferItem("q", np.array([GT_A]), proposals, "multi")
    with pytest.raises(ValueError, match="needs at least one GT box"):
        Multi3DReferItem("q", np.zeros((0, 6)), proposals, "st_w_d")
    with pytest.raises(ValueError, match="match no eval item"):
        score_scanrefer({"other": "<OBJ000>"}, [ScanReferItem("q", GT_A, proposals, unique=True)])
