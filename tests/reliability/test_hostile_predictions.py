"""Hostile prediction files: answers that are not strings, missing rows, a huge line, deeply nested JSON.

Every error names the file and the line (or row) and `gpt4scene score` exits non-zero with one error line and no
traceback; predictions that miss eval rows are reported before scoring (a warning, or an error with
``--require-complete``). The eval set is GPT4Scene's annotation format with SQA3D only (scored without Java).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import torch

from ops.core.errors import SceneInputError
from ops.core.jsonlines import iter_json_lines
from ops.dataset.annotations import read_json_file
from ops.metrics.official import load_official_annotations
from ops.metrics.predictions import read_predictions
from ops.metrics.suite import IncompletePredictionsError, check_complete
from ops.model.inference import EvalRow, merge_predictions, predict, read_prediction_rows
from pipelines.cli import main

SCENE = "scene0000_00"
REPO = Path(__file__).resolve().parents[2]
DEEP = 100_000  # far past Python's recursion limit


@pytest.fixture
def annotation(tmp_path) -> Path:
    """GPT4Scene's annotation folder with three SQA3D questions (qids 20, 21, 22); 21's answer is "zero"."""
    ann = tmp_path / "annotation"
    ann.mkdir()
    torch.save({SCENE: {"locs": torch.zeros((1, 6)), "objects": ["chair"]}}, ann / "scannet_val_attributes.pt")
    torch.save({SCENE: {"locs": torch.zeros((1, 6))}}, ann / "scannet_mask3d_val_attributes.pt")
    rows = [
        {"scene_id": SCENE, "qid": 20, "obj_id": 0, "prompt": "...", "ref_captions": ["yes"], "sqa_type": 1},
        {"scene_id": SCENE, "qid": 21, "obj_id": 0, "prompt": "...", "ref_captions": ["zero"], "sqa_type": 2},
        {"scene_id": SCENE, "qid": 22, "obj_id": 0, "prompt": "...", "ref_captions": ["chair"], "sqa_type": 0},
    ]
    (ann / "sqa3d_val.json").write_text(json.dumps(rows))
    return ann


def _jsonl(path: Path, answers: dict[str, object]) -> Path:
    lines = [
        json.dumps({"scene_id": SCENE, "sample_id": qid, "task": "sqa3d", "answer": a}) for qid, a in answers.items()
    ]
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _score(*args: str) -> subprocess.CompletedProcess:
    """`gpt4scene score` in its own process, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "score", *args], capture_output=True, text=True, env=env, cwd=REPO
    )


# -- answers that are not strings ---------------------------------------------------------------------------------

NOT_STRINGS = {"null": (None, "null"), "nan": (math.nan, "NaN"), "number": (0, "int"), "list": (["zero"], "list")}


@pytest.mark.parametrize("kind", sorted(NOT_STRINGS))
def test_an_answer_that_is_not_a_string_is_an_error_naming_file_and_line(tmp_path, kind):
    value, said = NOT_STRINGS[kind]
    path = _jsonl(tmp_path / "predictions.jsonl", {"20": "yes", "21": value})
    with pytest.raises(SceneInputError, match=rf"predictions.jsonl: line 2: 'answer' must be a string, got .*{said}"):
        read_predictions(path)


@pytest.mark.parametrize("kind", sorted(NOT_STRINGS))
def test_an_official_pred_that_is_not_a_string_is_an_error_naming_file_and_row(tmp_path, kind):
    value, said = NOT_STRINGS[kind]
    path = tmp_path / "qwenvl_sqa3d" / "predictions_chunk_0.json"
    path.parent.mkdir()
    path.write_text(json.dumps([{"qid": 20, "pred": "yes"}, {"qid": 21, "pred": value}]))
    with pytest.raises(
        SceneInputError, match=rf"predictions_chunk_0.json: sqa3d row 1: 'pred' must be a string.*{said}"
    ):
        read_predictions(path)


def test_a_null_answer_is_not_scored_as_sqa3d_zero(annotation, tmp_path, capsys):
    """Coerced to "None", a null answer once normalised to "zero" and matched the reference."""
    path = _jsonl(tmp_path / "predictions.jsonl", {"20": "yes", "21": None, "22": "chair"})
    assert main(["score", "--predictions", str(path), "--eval-set", str(annotation)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "predictions.jsonl: line 2: 'answer' must be a string, got null" in err
    assert not (tmp_path / "scores.json").exists()


def test_score_cli_error_names_the_file_and_prints_no_traceback(annotation, tmp_path):
    path = _jsonl(tmp_path / "predictions.jsonl", {"20": "yes", "21": math.nan, "22": "chair"})
    done = _score("--predictions", str(path), "--eval-set", str(annotation))
    assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip().splitlines() == [
        f"error: scene ?, file {path}: line 2: 'answer' must be a string, got NaN"
    ]


def test_merge_refuses_a_chunk_with_a_null_answer(tmp_path):
    good = {"scene_id": SCENE, "sample_id": "a", "task": "sqa3d", "prompt": "", "answer": "yes", "parsed_ids": []}
    chunk = tmp_path / "predictions_chunk_0_of_1.jsonl"
    chunk.write_text(json.dumps(good) + "\n" + json.dumps({**good, "sample_id": "b", "answer": None}) + "\n")
    with pytest.raises(SceneInputError, match=r"predictions_chunk_0_of_1.jsonl: line 2: 'answer' must be a string"):
        merge_predictions([chunk], tmp_path / "predictions.jsonl")
    assert not (tmp_path / "predictions.jsonl").exists()


def test_resume_still_cuts_a_torn_line_and_keeps_complete_rows(tmp_path):
    rows = [EvalRow(f"s{i}", SCENE, "sqa3d", f"<image>question {i}", (b"",)) for i in range(5)]
    out = tmp_path / "chunk.jsonl"
    predict(rows[:3], lambda batch: [f"answer {r.sample_id}" for r in batch], out, batch_size=2)
    with open(out, "ab") as handle:
        handle.write(b'{"answer": "torn')  # a crash mid-append
    stats = predict(rows, lambda batch: [f"answer {r.sample_id}" for r in batch], out, batch_size=2)
    assert (stats.skipped, stats.generated) == (3, 2)
    assert [r["answer"] for r in read_prediction_rows(out)] == [f"answer s{i}" for i in range(5)]


# -- missing rows -------------------------------------------------------------------------------------------------


def test_missing_rows_are_a_warning_by_default_and_recorded_in_the_scores(annotation, tmp_path, capsys):
    path = _jsonl(tmp_path / "predictions.jsonl", {"20": "yes", "22": "chair"})
    assert main(["score", "--predictions", str(path), "--eval-set", str(annotation)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {path}: 1 of 3 eval rows have no prediction (sqa3d 1)" in err
    written = json.loads((tmp_path / "scores.json").read_text())
    assert written["missing_predictions"] == {"sqa3d": 1}
    assert written["scores"]["sqa3d"]["em"] == pytest.approx(2 / 3)  # the missing row scores as a miss


def test_missing_rows_are_an_error_with_require_complete(annotation, tmp_path):
    path = _jsonl(tmp_path / "predictions.jsonl", {"20": "yes"})
    done = _score("--predictions", str(path), "--eval-set", str(annotation), "--require-complete")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"error: {path}: 2 of 3 eval rows have no prediction (sqa3d 2)"
    assert not (tmp_path / "scores.json").exists()


def test_complete_predictions_write_no_missing_field(annotation, tmp_path, capsys):
    path = _jsonl(tmp_path / "predictions.jsonl", {"20": "yes", "21": "0", "22": "chair"})
    assert main(["score", "--predictions", str(path), "--eval-set", str(annotation), "--require-complete"]) == 0
    assert "warning" not in capsys.readouterr().err
    written = json.loads((tmp_path / "scores.json").read_text())
    assert sorted(written) == ["eval_set", "format", "items", "scores"]
    assert written["scores"]["sqa3d"]["em"] == 1.0


def test_check_complete_on_the_scoring_path(annotation):
    suite = load_official_annotations(annotation)
    warnings: list[str] = []
    assert check_complete(suite, {"sqa3d": {"20": "yes"}}, "run", warnings.append) == {"sqa3d": 2}
    assert warnings == ["warning: run: 2 of 3 eval rows have no prediction (sqa3d 2); they score as misses"]
    with pytest.raises(IncompletePredictionsError, match="run: 2 of 3 eval rows"):
        check_complete(suite, {"sqa3d": {"20": "yes"}}, "run", warnings.append, require_complete=True)


# -- a huge line, deep nesting ------------------------------------------------------------------------------------


def test_a_huge_line_is_refused_naming_file_and_line_without_being_held(tmp_path):
    path = tmp_path / "predictions.jsonl"
    row = {"scene_id": SCENE, "sample_id": "20", "task": "sqa3d", "answer": "yes"}
    with open(path, "w") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.write('{"answer": "' + "x" * (48 << 20) + '"}\n')  # 48 MiB on one line
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(SceneInputError, match=r"predictions.jsonl: line 2: longer than 1048576 bytes"):
        read_predictions(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.perf_counter() - started < 5 and peak < 8 << 20


def test_the_line_limit_applies_to_every_line_and_the_last_without_newline(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n' + b'{"b": "' + b"y" * 100 + b'"}')
    assert [n for n, _ in iter_json_lines(path, max_line_bytes=200)] == [1, 2]
    with pytest.raises(SceneInputError, match="rows.jsonl: line 2: longer than 64 bytes"):
        list(iter_json_lines(path, max_line_bytes=64))
    assert list(iter_json_lines(path, max_line_bytes=200, complete_only=True)) == [(1, {"a": 1})]  # torn tail


def test_deeply_nested_prediction_line_is_a_clear_error(tmp_path, annotation):
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"answer": ' + "[" * DEEP + "]" * DEEP + "}\n")
    with pytest.raises(SceneInputError, match=r"predictions.jsonl: line 1: JSON nested too deeply"):
        read_predictions(path)
    done = _score("--predictions", str(path), "--eval-set", str(annotation))
    assert done.returncode == 2 and "Traceback" not in done.stderr and "RecursionError" not in done.stderr
    assert "line 1: JSON nested too deeply" in done.stderr


def test_deeply_nested_official_predictions_and_annotations_are_clear_errors(tmp_path):
    path = tmp_path / "qwenvl_sqa3d" / "predictions_chunk_0.json"
    path.parent.mkdir()
    path.write_text("[" * DEEP + "]" * DEEP)
    with pytest.raises(SceneInputError, match=r"predictions_chunk_0.json: malformed JSON: nested too deeply"):
        read_predictions(path)
    annotation = tmp_path / "ScanQA_v1.0_val.json"
    annotation.write_text('[{"question": ' + "[" * DEEP)
    with pytest.raises(SceneInputError, match=r"ScanQA_v1.0_val.json: malformed JSON: nested too deeply"):
        read_json_file(annotation)


def test_a_fifo_is_not_opened(tmp_path):
    fifo = tmp_path / "predictions.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(SceneInputError, match="predictions.jsonl: not a regular file"):
        read_predictions(fifo)
    with pytest.raises(SceneInputError, match="not a regular file"):
        read_prediction_rows(fifo)
