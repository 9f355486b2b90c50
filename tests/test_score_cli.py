"""`gpt4scene score` on our eval sets and on GPT4Scene's released annotation / prediction formats.

The official-format fixtures are written by hand in the released layout (task JSONs, Chat-Scene box attribute
``.pt`` files, ``scan2cap_val_corpus.json``, ``qwenvl_<task>/predictions_chunk_<i>.json``); expected values are
computed by hand. Boxes: 2 m cubes; centres 1 m apart overlap with IoU 1/3 (a hit at 0.25, a miss at 0.5).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ops.core.errors import SceneInputError
from ops.metrics.benchmarks import CaptionItem, QAItem, score_scan2cap, score_scanqa
from ops.metrics.official import load_official_annotations
from ops.metrics.predictions import read_predictions
from ops.metrics.suite import score_suite
from pipelines.cli import main

SCENE = "scene0000_00"
GT_A = [0.0, 0.0, 0.0, 2.0, 2.0, 2.0]
GT_B = [5.0, 0.0, 0.0, 2.0, 2.0, 2.0]
NEAR_A = [1.0, 0.0, 0.0, 2.0, 2.0, 2.0]
FAR = [20.0, 0.0, 0.0, 2.0, 2.0, 2.0]


def _write(path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.fixture
def official(tmp_path):
    """An annotation folder and a predictions folder in GPT4Scene's layout."""
    ann, preds = tmp_path / "annotation", tmp_path / "eval_outputs"
    ann.mkdir()
    torch.save(
        {SCENE: {"locs": torch.tensor([GT_A, GT_B]), "objects": ["chair", "table"]}}, ann / "scannet_val_attributes.pt"
    )
    torch.save({SCENE: {"locs": torch.tensor([NEAR_A, GT_A, FAR, GT_B])}}, ann / "scannet_mask3d_val_attributes.pt")
    _write(ann / "scanrefer_unique_multiple_lookup.json", {SCENE: {"0": 0, "1": 1}})  # object 0 unique, 1 multiple
    row = {"scene_id": SCENE, "prompt": "...", "ref_captions": []}
    queries = ((0, 0), (1, 0), (2, 1), (3, 1))  # (qid, GT object)
    _write(ann / "scanrefer_mask3d_val.json", [{**row, "qid": q, "obj_id": o} for q, o in queries])
    _write(
        ann / "multi3dref_mask3d_val.json",
        [
            {**row, "qid": 10, "obj_id": 0, "ref_captions": [], "eval_type": "zt_w_d"},
            {**row, "qid": 11, "obj_id": 0, "ref_captions": [0, 1], "eval_type": "mt"},
            {**row, "qid": 12, "obj_id": 1, "ref_captions": [1], "eval_type": "st_w_d"},
        ],
    )
    _write(
        ann / "sqa3d_val.json",
        [
            {**row, "qid": 20, "obj_id": 0, "ref_captions": ["yes"], "sqa_type": 1},
            {**row, "qid": 21, "obj_id": 0, "ref_captions": ["two"], "sqa_type": 0},
            {**row, "qid": 22, "obj_id": 0, "ref_captions": ["brown chair"], "sqa_type": 0},
        ],
    )

    def pred(qid, text):
        return {
            "scene_id": SCENE,
            "qid": qid,
            "gt_id": 0,
            "pred_id": 0,
            "prompt": "...",
            "pred": text,
            "ref_captions": [],
            "type_info": "",
        }

    # qid 3 is never answered: it falls back to proposal 0 like an answer without an ID.
    _write(preds / "qwenvl_scanrefer" / "predictions_chunk_0.json", [pred(0, "<OBJ001>."), pred(1, "I think so.")])
    _write(preds / "qwenvl_scanrefer" / "predictions_chunk_1.json", [pred(2, "<OBJ003>.")])
    _write(
        preds / "qwenvl_multi3dref" / "predictions_chunk_0.json",
        [
            pred(10, "No."),
            pred(11, "Yes. <OBJ001>, <OBJ003>, and <OBJ003>."),
            pred(12, "Yes. <OBJ042>."),
        ],
    )
    _write(preds / "qwenvl_sqa3d" / "predictions_chunk_0.json", [pred(20, "Yes."), pred(21, "2"), pred(22, "Chair.")])
    return ann, preds


def test_official_formats_score_to_hand_computed_values(official, tmp_path, capsys):
    ann, preds = official
    out = tmp_path / "scores.json"
    assert main(["score", "--predictions", str(preds), "--eval-set", str(ann), "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["format"] == "official" and written["items"] == {"sqa3d": 3, "scanrefer": 4, "multi3drefer": 3}
    scores = written["scores"]
    # ScanRefer: q0 GT_A exact (hit, hit); q1 no ID -> proposal 0 NEAR_A (hit, miss); q2 GT_B (hit, hit);
    # q3 unanswered -> NEAR_A against GT_B (miss, miss). q0, q1 unique; q2, q3 multiple.
    assert scores["scanrefer"] == pytest.approx(
        {
            "acc@0.25": 3 / 4,
            "acc@0.50": 2 / 4,
            "unique_acc@0.25": 1.0,
            "unique_acc@0.50": 1 / 2,
            "multiple_acc@0.25": 1 / 2,
            "multiple_acc@0.50": 1 / 2,
        }
    )
    # Multi3DRefer: zero-target "No." 1; mt GT_A, GT_B, GT_B (duplicate kept) -> TP 2, F1 2*2/(3+2); st invalid ID 0.
    assert scores["multi3drefer"] == pytest.approx(
        {
            "f1@0.25": 1.8 / 3,
            "f1@0.50": 1.8 / 3,
            "zt_w_d_f1@0.25": 1.0,
            "zt_w_d_f1@0.50": 1.0,
            "mt_f1@0.25": 0.8,
            "mt_f1@0.50": 0.8,
            "st_w_d_f1@0.25": 0.0,
            "st_w_d_f1@0.50": 0.0,
        }
    )
    # SQA3D: "Yes." -> yes (1, 1); "2" -> two (1, 1); "Chair." -> chair inside brownchair (0, 1).
    assert scores["sqa3d"]["em"] == pytest.approx(2 / 3) and scores["sqa3d"]["em_refined"] == 1.0
    assert scores["sqa3d"]["em_what"] == pytest.approx(1 / 2) and scores["sqa3d"]["em_is"] == 1.0
    assert "| scanrefer | acc@0.25 | 62.6 | 75.0 |" in capsys.readouterr().out

    # One chunk file on its own needs its task from the folder name or --task.
    single = read_predictions(preds / "qwenvl_scanrefer" / "predictions_chunk_1.json")
    assert single == {"scanrefer": {"2": "<OBJ003>."}}
    moved = tmp_path / "chunk.json"
    moved.write_text((preds / "qwenvl_scanrefer" / "predictions_chunk_1.json").read_text())
    with pytest.raises(SceneInputError, match="cannot tell the task"):
        read_predictions(moved)
    assert read_predictions(moved, task="scanrefer") == single
    # As SQA3D predictions its qid 2 matches no SQA3D item: a clear error, exit status 2.
    assert main(["score", "--predictions", str(moved), "--eval-set", str(ann), "--task", "sqa3d"]) == 2


def test_official_captions_match_the_scorers_on_the_same_items(official, caption_scorer):
    ann, _ = official
    _write(
        ann / "scan2cap_mask3d_val.json",
        [
            {"scene_id": SCENE, "qid": 30, "obj_id": 0, "pred_id": 1, "iou": 1.0, "prompt": "...", "ref_captions": []},
            {"scene_id": SCENE, "qid": 31, "obj_id": 1, "pred_id": 0, "iou": 0.0, "prompt": "...", "ref_captions": []},
        ],
    )
    corpus = {
        f"{SCENE}|0": ["sos A brown chair. eos"],
        f"{SCENE}|1": ["sos A white table. eos"],
        f"{SCENE}|2": ["sos A lamp. eos", "sos The lamp is tall. eos"],
    }
    _write(ann / "scan2cap_val_corpus.json", corpus)
    _write(
        ann / "scanqa_val.json",
        [
            {"scene_id": SCENE, "qid": 40, "obj_id": 0, "prompt": "...", "ref_captions": ["brown", "dark brown"]},
            {"scene_id": SCENE, "qid": 41, "obj_id": 0, "prompt": "...", "ref_captions": ["the table"]},
        ],
    )
    suite = load_official_annotations(ann)
    answers = {"scan2cap": {"30": "A brown chair.", "31": "A white table."}, "scanqa": {"40": "Brown.", "41": "Table"}}
    scores = score_suite(suite, answers, caption_scorer, tasks=("scanqa", "scan2cap"))
    proposals, gt = np.array([NEAR_A, GT_A, FAR, GT_B]), np.array([GT_A, GT_B])
    items = [
        CaptionItem(f"{SCENE}|0", ("A brown chair.",), 1, proposals, gt[0]),
        CaptionItem(f"{SCENE}|1", ("A white table.",), 0, proposals, gt[1]),  # NEAR_A vs GT_B: IoU 0
        CaptionItem(f"{SCENE}|2", ("A lamp.", "The lamp is tall.")),
    ]
    expected = score_scan2cap({f"{SCENE}|0": "A brown chair.", f"{SCENE}|1": "A white table."}, items, caption_scorer)
    assert scores["scan2cap"] == pytest.approx(expected, abs=1e-12)
    qa = [QAItem("40", ("brown", "dark brown")), QAItem("41", ("the table",))]
    assert scores["scanqa"] == pytest.approx(score_scanqa({"40": "Brown.", "41": "Table"}, qa, caption_scorer))
    assert scores["scanqa"]["em"] == 0.5 and scores["scanqa"]["em_refined"] == 1.0  # raw refs: "table" ⊂ "thetable"


def test_official_input_errors_name_the_file(official):
    ann, _ = official
    rows = json.loads((ann / "sqa3d_val.json").read_text())
    _write(ann / "sqa3d_val.json", rows + [rows[0]])
    with pytest.raises(SceneInputError, match=r"sqa3d_val.json: row 3: qid 20 repeats"):
        load_official_annotations(ann)
    _write(ann / "sqa3d_val.json", rows)
    torch.save({"scene0999_00": {"locs": torch.zeros((1, 6))}}, ann / "scannet_val_attributes.pt")
    with pytest.raises(SceneInputError, match=r"scene 'scene0000_00', file .*scannet_val_attributes.pt: no boxes"):
        load_official_annotations(ann)


@pytest.mark.slow
def test_our_eval_set_scores_every_metric_of_the_five_benchmarks(eval_data, tmp_path, capsys):
    from ops.dataset.shards import iter_rows

    eval_dir = eval_data.eval_dirs["marked"]
    lines = [
        json.dumps(
            {
                "scene_id": r["scene_id"],
                "sample_id": r["sample_id"],
                "task": r["task"],
                "prompt": "",
                "answer": r["messages"][1]["content"],
                "parsed_ids": [],
            }
        )
        + "\n"
        for r in iter_rows(eval_dir, columns=("sample_id", "scene_id", "task", "messages"))
    ]
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(lines))
    # The eval set sits at <root>/dataset/eval/val_marked, so the storage root is found without --root.
    assert main(["score", "--predictions", str(predictions), "--eval-set", str(eval_dir)]) == 0
    scores = json.loads((tmp_path / "scores.json").read_text())["scores"]
    assert sorted(scores) == sorted(["scanqa", "sqa3d", "scanrefer", "multi3drefer", "scan2cap"])
    assert {"bleu1", "bleu4", "meteor", "rouge_l", "cider", "em", "em_refined"} <= set(scores["scanqa"])
    expected = {f"{m}@{t}" for m in ("cider", "bleu4", "meteor", "rouge_l") for t in ("0.25", "0.50")}
    assert set(scores["scan2cap"]) == expected
    assert scores["scanrefer"]["acc@0.50"] == 1.0 and scores["multi3drefer"]["f1@0.50"] == 1.0
    assert scores["scan2cap"]["meteor@0.50"] == pytest.approx(1.0)  # every matched object captioned with its ref
    assert "| scan2cap | cider@0.50 | 86.3 |" in capsys.readouterr().out
