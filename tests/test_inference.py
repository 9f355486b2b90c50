"""Inference over a real eval shard set with the tiny Qwen2-VL: chunking, resuming, merging, and scoring the rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ops.core.errors import SceneInputError
from ops.metrics.eval_sets import load_eval_set
from ops.metrics.predictions import read_predictions
from ops.metrics.suite import score_suite
from ops.model.inference import (
    InferenceSettings,
    chunk_path,
    chunk_rows,
    merge_predictions,
    predict,
    read_eval_rows,
    read_prediction_rows,
    run_inference,
    vlm_answerer,
)
from ops.model.vlm import load_vlm

MAX_NEW_TOKENS = 6


@pytest.fixture(scope="module")
def vlm(tiny_model_dir):
    return load_vlm(tiny_model_dir)


def test_chunks_split_as_gpt4scene_infer_does():
    rows = list(range(10))
    assert [chunk_rows(rows, 3, i) for i in range(3)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    assert chunk_rows(rows, 1, 0) == rows
    assert [chunk_rows(rows[:2], 3, i) for i in range(3)] == [[], [], [0, 1]]
    with pytest.raises(ValueError, match="chunk_index"):
        chunk_rows(rows, 2, 2)


def test_eval_rows_are_sorted_and_carry_their_images(eval_data):
    rows = read_eval_rows(eval_data.eval_dirs["marked"])
    assert [r.sample_id for r in rows] == sorted(r.sample_id for r in rows)
    assert {r.task for r in rows} == {"scanqa", "sqa3d", "scanrefer", "multi3drefer", "scan2cap"}
    for row in rows:
        assert row.user_text.count("<image>") == len(row.images) == 9
        assert "<image>" not in row.prompt and row.prompt.strip()
    no_bev = read_eval_rows(eval_data.eval_dirs["no_bev"])
    assert [len(r.images) for r in no_bev] == [8] * len(rows)


def test_chunked_runs_merge_to_the_single_run_file(eval_data, vlm, tmp_path):
    eval_dir = eval_data.eval_dirs["marked"]
    whole = tmp_path / "whole" / "predictions.jsonl"
    limit = 14  # a prefix of the eval set keeps the test short; ``limit`` applies before chunking
    stats = run_inference(
        vlm, eval_dir, whole, InferenceSettings(batch_size=8, max_new_tokens=MAX_NEW_TOKENS, limit=limit)
    )
    rows = read_eval_rows(eval_dir)[:limit]
    assert (stats.rows, stats.skipped, stats.generated) == (limit, 0, limit)
    chunks = []
    for index in range(2):
        path = chunk_path(tmp_path / "chunks", 2, index)
        settings = InferenceSettings(
            batch_size=3, max_new_tokens=MAX_NEW_TOKENS, num_chunks=2, chunk_index=index, limit=limit
        )
        assert run_inference(vlm, eval_dir, path, settings).generated == len(chunk_rows(rows, 2, index))
        chunks.append(path)
    merged = tmp_path / "merged.jsonl"
    assert merge_predictions(chunks, merged, [r.sample_id for r in rows]) == len(rows)
    merged_again = tmp_path / "merged_again.jsonl"
    merge_predictions([whole], merged_again)
    assert merged.read_bytes() == merged_again.read_bytes()  # batch size and chunking change nothing

    first = read_prediction_rows(merged)[0]
    assert set(first) == {"scene_id", "sample_id", "task", "prompt", "answer", "parsed_ids"}
    by_id = {r.sample_id: r for r in rows}
    assert first["prompt"] == by_id[first["sample_id"]].prompt

    # The rows score (the prefix is all Multi3DRefer; items without an answer score as unanswered).
    suite = load_eval_set(eval_dir, eval_data.root)
    scores = score_suite(suite, read_predictions(merged), tasks=("sqa3d", "scanrefer", "multi3drefer"))
    assert set(scores) == {"sqa3d", "scanrefer", "multi3drefer"}
    with pytest.raises(ValueError, match="do not cover the eval set"):
        merge_predictions(chunks[:1], tmp_path / "partial.jsonl", [r.sample_id for r in rows])


def test_resume_answers_only_what_is_missing_and_drops_a_torn_line(eval_data, vlm, tmp_path):
    rows = read_eval_rows(eval_data.eval_dirs["marked"])[:10]
    answer = vlm_answerer(vlm, None, MAX_NEW_TOKENS, 512)
    asked: list[str] = []

    def counting(batch):
        asked.extend(r.sample_id for r in batch)
        return answer(batch)

    reference = tmp_path / "reference.jsonl"
    predict(rows, answer, reference, batch_size=4)
    lines = reference.read_text().splitlines(keepends=True)

    resumed = tmp_path / "resumed.jsonl"
    resumed.write_text("".join(lines[:6]) + lines[6][:17])  # 6 complete rows, then a crash mid-line
    stats = predict(rows, counting, resumed, batch_size=4)
    assert (stats.skipped, stats.generated) == (6, 4)
    assert asked == [r.sample_id for r in rows[6:]]
    assert resumed.read_bytes() == reference.read_bytes()
    assert predict(rows, counting, resumed, batch_size=4).generated == 0  # nothing left: no model call
    assert len(asked) == 4


def test_batched_answers_equal_unbatched(eval_data, vlm):
    rows = read_eval_rows(eval_data.eval_dirs["marked"])[:3]
    answer = vlm_answerer(vlm, None, MAX_NEW_TOKENS, 512)
    assert answer(rows) == [answer([row])[0] for row in rows]


def test_gold_answers_score_perfectly_on_grounding(eval_data, tmp_path):
    from ops.dataset.shards import iter_rows

    eval_dir = eval_data.eval_dirs["marked"]
    lines = []
    for row in iter_rows(eval_dir, columns=("sample_id", "scene_id", "task", "messages")):
        gold = row["messages"][1]["content"]
        lines.append(
            json.dumps(
                {
                    "scene_id": row["scene_id"],
                    "sample_id": row["sample_id"],
                    "task": row["task"],
                    "prompt": "",
                    "answer": gold,
                    "parsed_ids": [],
                }
            )
            + "\n"
        )
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(lines))
    scores = score_suite(
        load_eval_set(eval_dir, eval_data.root), read_predictions(path), tasks=("sqa3d", "scanrefer", "multi3drefer")
    )
    assert scores["sqa3d"]["em"] == 1.0
    assert scores["scanrefer"]["acc@0.50"] == 1.0 and scores["multi3drefer"]["f1@0.50"] == 1.0


def test_changed_proposal_boxes_are_refused_naming_scene_and_file(eval_data, tmp_path):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(eval_data.root / "scenes", root / "scenes")
    boxes = sorted((root / "scenes").glob("*/instances/boxes.npy"))
    val_scene = read_eval_rows(eval_data.eval_dirs["marked"])[0].scene_id
    target = next(p for p in boxes if p.parts[-3] == val_scene)
    np.save(target, np.load(target) + 1.0)
    with pytest.raises(SceneInputError, match=rf"scene '{val_scene}'.*boxes.npy.*changed since the eval set"):
        load_eval_set(eval_data.eval_dirs["marked"], root)
