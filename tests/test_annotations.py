"""Benchmark annotation loaders: published schemas in, typed records out, malformed rows reported by file and row."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from ops.core.errors import SceneInputError
from ops.dataset.annotations import AnnotationError, RowIssue, read_split_scenes
from ops.dataset.benchmarks import (
    Scan2CapObject,
    ScanReferRecord,
    load_benchmarks,
    load_multi3drefer,
    load_scanqa,
    load_scanrefer,
    load_sqa3d,
    scan2cap_objects,
    scanrefer_class,
    scanrefer_unique_lookup,
)
from ops.scannet.annotations import LabelRow
from ops.synthetic import generate_dataset


def _write(path: Path, content) -> Path:
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def _scanrefer_row(scene="scene0000_00", object_id="3", ann_id="0", description="the red chair.", name="chair"):
    return {
        "scene_id": scene,
        "object_id": object_id,
        "object_name": name,
        "ann_id": ann_id,
        "description": description,
        "token": description.split(),
    }


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("ann")
    truth = generate_dataset(out, n_scenes=2, seed=5, n_frames=10, color_size=(64, 48), depth_size=(32, 24))
    return out / "annotations", truth


def test_load_benchmarks_reads_every_published_file(synthetic):
    ann_dir, truth = synthetic
    for split, scene_ids in (("train", truth.train_ids), ("val", truth.val_ids)):
        bench = load_benchmarks(ann_dir, split)
        raw = {
            name: json.loads((ann_dir / name.format(split=split)).read_text())
            for name in (
                "ScanRefer_filtered_{split}.json",
                "ScanQA_v1.0_{split}.json",
                "multi3drefer_{split}.json",
                "v1_balanced_questions_{split}_scannetv2.json",
            )
        }
        assert len(bench.scanrefer) == len(raw["ScanRefer_filtered_{split}.json"]) > 0
        assert len(bench.scanqa) == len(raw["ScanQA_v1.0_{split}.json"]) > 0
        assert len(bench.multi3drefer) == len(raw["multi3drefer_{split}.json"]) > 0
        assert len(bench.sqa3d) == len(raw["v1_balanced_questions_{split}_scannetv2.json"]["questions"]) > 0
        assert bench.issues == []
        assert bench.scene_ids() == sorted(scene_ids) == read_split_scenes(ann_dir / f"scannetv2_{split}.txt")
        # ScanRefer's object_id strings become ints; every described object is one Scan2Cap object.
        first = raw["ScanRefer_filtered_{split}.json"][0]
        assert bench.scanrefer[0] == ScanReferRecord(
            first["scene_id"], int(first["object_id"]), first["object_name"], first["ann_id"], first["description"]
        )
        assert {(o.scene_id, o.object_id) for o in bench.scan2cap} == {
            (r.scene_id, r.object_id) for r in bench.scanrefer
        }
        assert set(bench.scanrefer_unique) == {(o.scene_id, o.object_id) for o in bench.scan2cap}
        # SQA3D: questions joined with answers by question_id.
        question = raw["v1_balanced_questions_{split}_scannetv2.json"]["questions"][0]
        record = next(r for r in bench.sqa3d if r.question_id == str(question["question_id"]))
        assert (record.situation, record.question) == (question["situation"], question["question"])
        assert record.alternative_situations == tuple(question["alternative_situation"])
        assert record.answers and all(isinstance(a, str) for a in record.answers)


def test_scene_filter_and_task_selection(synthetic):
    ann_dir, truth = synthetic
    scene = truth.train_ids[0]
    bench = load_benchmarks(ann_dir, "train", tasks=("scanqa", "scan2cap"), scene_ids={scene})
    assert bench.scanqa and all(r.scene_id == scene for r in bench.scanqa)
    assert bench.scan2cap and bench.scanrefer == [] and bench.sqa3d == [] and bench.multi3drefer == []
    assert load_benchmarks(ann_dir, "train", scene_ids={"scene9999_00"}).scene_ids() == []
    with pytest.raises(ValueError, match="unknown tasks"):
        load_benchmarks(ann_dir, "train", tasks=("scanqa", "nr3d"))
    with pytest.raises(SceneInputError, match="ScanQA_v1.0_test.json"):
        load_benchmarks(ann_dir, "test", tasks=("scanqa",))


def test_malformed_scanrefer_rows_are_reported_with_file_and_row(tmp_path):
    rows = [
        _scanrefer_row(),
        {k: v for k, v in _scanrefer_row(ann_id="1").items() if k != "description"},
        _scanrefer_row(object_id="three", ann_id="2"),
        _scanrefer_row(scene="../etc", ann_id="3"),
        _scanrefer_row(),  # duplicate of row 0
        "not an object",
        _scanrefer_row(description="look <image> here", ann_id="6"),
        _scanrefer_row(object_id=7, ann_id="7"),  # an int object_id is accepted
    ]
    path = _write(tmp_path / "ScanRefer_filtered_train.json", rows)
    with pytest.raises(AnnotationError) as info:
        load_scanrefer(path)
    error = info.value
    assert [i.row for i in error.issues] == [1, 2, 3, 4, 5, 6]
    assert all(i.file == str(path) for i in error.issues)
    assert error.path == str(path)
    message = str(error)
    assert "6 malformed row(s)" in message and "row 2 of ScanRefer_filtered_train.json" in message
    assert "missing field 'description'" in message and "duplicate id" in message and "invalid scene id" in message
    # Ray/multiprocessing pickle the error with its issues.
    assert pickle.loads(pickle.dumps(error)).issues == error.issues

    loaded = load_scanrefer(path, on_error="collect")
    assert [(r.object_id, r.ann_id) for r in loaded.records] == [(3, "0"), (7, "7")]
    assert loaded.issues == error.issues


def test_malformed_scanqa_and_multi3drefer_rows(tmp_path):
    qa = [
        {
            "scene_id": "scene0000_00",
            "question_id": "q0",
            "question": "What color?",
            "answers": ["red"],
            "object_ids": [1],
            "object_names": ["chair"],
        },
        {"scene_id": "scene0000_00", "question_id": "q1", "question": "What?", "answers": []},
        {"scene_id": "scene0000_00", "question_id": "q0", "question": "Again?", "answers": ["x"]},
        {
            "scene_id": "scene0000_00",
            "question_id": "q3",
            "question": "Where?",
            "answers": ["left"],
            "object_ids": ["a"],
        },
    ]
    loaded = load_scanqa(_write(tmp_path / "ScanQA_v1.0_train.json", qa), on_error="collect")
    assert [r.question_id for r in loaded.records] == ["q0"]
    assert [(i.row, i.reason) for i in loaded.issues] == [
        (1, "'answers' is empty"),
        (2, "duplicate id 'q0' (first at row 0)"),
        (3, "'object_ids' must be an integer, got 'a'"),
    ]

    m3d = [
        {
            "scene_id": "scene0000_00",
            "ann_id": "0",
            "object_ids": [],
            "object_name": "lamp",
            "description": "the lamp.",
            "eval_type": "zt_w_d",
        },
        {
            "scene_id": "scene0000_00",
            "ann_id": "1",
            "object_ids": [2],
            "object_name": "lamp",
            "description": "the lamp.",
            "eval_type": "zt_wo_d",
        },
        {
            "scene_id": "scene0000_00",
            "ann_id": "2",
            "object_ids": [2],
            "object_name": "lamp",
            "description": "the lamp.",
            "eval_type": "single",
        },
        {
            "scene_id": "scene0000_00",
            "ann_id": "3",
            "object_ids": [2, 2],
            "object_name": "lamp",
            "description": "the lamps.",
            "eval_type": "mt",
        },
    ]
    path = _write(tmp_path / "multi3drefer_train.json", m3d)
    with pytest.raises(AnnotationError) as info:
        load_multi3drefer(path)
    assert [i.row for i in info.value.issues] == [1, 2, 3]
    assert "does not fit 1 target(s)" in info.value.issues[0].reason


def test_sqa3d_join_reports_unmatched_and_inconsistent_rows(tmp_path):
    def question(qid, scene="scene0000_00"):
        return {
            "scene_id": scene,
            "situation": "I am sitting on the bed.",
            "alternative_situation": [],
            "question": "What is behind me?",
            "question_id": qid,
        }

    def annotation(qid, scene="scene0000_00"):
        return {
            "scene_id": scene,
            "question_id": qid,
            "question_type": "what",
            "answer_type": "other",
            "answers": [{"answer": "desk", "answer_confidence": "yes", "answer_id": 1}],
        }

    questions = _write(tmp_path / "q.json", {"questions": [question(1), question(2), question(3, "scene0001_00")]})
    annotations = _write(tmp_path / "a.json", {"annotations": [annotation(1), annotation(3), annotation(4)]})
    loaded = load_sqa3d(questions, annotations, on_error="collect")
    assert [r.question_id for r in loaded.records] == ["1"]
    assert loaded.records[0].answers == ("desk",) and loaded.records[0].question_type == "what"
    assert sorted((Path(i.file).name, i.row) for i in loaded.issues) == [("a.json", 1), ("a.json", 2), ("q.json", 1)]
    with pytest.raises(AnnotationError, match="has no annotation"):
        load_sqa3d(questions, annotations)


def test_unreadable_files_name_the_file(tmp_path):
    bad_utf8 = tmp_path / "ScanRefer_filtered_val.json"
    bad_utf8.write_bytes(b'[{"description": "caf\xe9"}]')
    with pytest.raises(SceneInputError, match=r"ScanRefer_filtered_val\.json.*not UTF-8"):
        load_scanrefer(bad_utf8)
    bad_json = tmp_path / "ScanQA_v1.0_val.json"
    bad_json.write_text('[{"scene_id": "scene0000_00",\n  "question": }]')
    with pytest.raises(SceneInputError, match=r"ScanQA_v1\.0_val\.json.*malformed JSON.*line 2"):
        load_scanqa(bad_json)
    wrong_shape = _write(tmp_path / "multi3drefer_val.json", {"rows": []})
    with pytest.raises(SceneInputError, match="expected a JSON list"):
        load_multi3drefer(wrong_shape)
    no_questions = _write(tmp_path / "q.json", [])
    with pytest.raises(SceneInputError, match="'questions' list"):
        load_sqa3d(no_questions, no_questions)
    with pytest.raises(SceneInputError, match="missing.json"):
        load_scanrefer(tmp_path / "missing.json")
    split = tmp_path / "scannetv2_val.txt"
    split.write_text("scene0000_00\n\nscene 01\n")
    with pytest.raises(SceneInputError, match="line 3: invalid scene id"):
        read_split_scenes(split)


def _label(raw: str, nyu40class: str) -> LabelRow:
    return LabelRow(0, raw, raw, 0, nyu40class)


def test_scanrefer_unique_multiple_by_18_classes():
    labels = {
        "chair": _label("chair", "chair"),
        "office chair": _label("office chair", "chair"),
        "couch": _label("couch", "sofa"),
        "lamp": _label("lamp", "lamp"),
        "trash can": _label("trash can", "garbage bin"),
        "kitchen cabinets": _label("kitchen cabinets", "cabinet"),
    }
    assert scanrefer_class("office_chair", labels) == "chair"
    assert scanrefer_class("couch", labels) == "sofa"
    assert scanrefer_class("lamp", labels) == "others"
    assert scanrefer_class("unicorn", labels) == "others"
    records = [
        ScanReferRecord("scene0000_00", 1, "chair", "0", "a"),
        ScanReferRecord("scene0000_00", 1, "chair", "1", "b"),  # the same object twice counts once
        ScanReferRecord("scene0000_00", 2, "office_chair", "0", "c"),
        ScanReferRecord("scene0000_00", 3, "couch", "0", "d"),
        ScanReferRecord("scene0000_00", 4, "lamp", "0", "e"),
        ScanReferRecord("scene0000_00", 5, "trash can", "0", "f"),
        ScanReferRecord("scene0000_00", 6, "kitchen cabinets", "0", "g"),
        ScanReferRecord("scene0001_00", 1, "lamp", "0", "h"),
    ]
    assert scanrefer_unique_lookup(records, labels) == {
        ("scene0000_00", 1): False,
        ("scene0000_00", 2): False,  # chair + office chair: class chair twice
        ("scene0000_00", 3): True,
        ("scene0000_00", 6): True,
        ("scene0000_00", 4): False,
        ("scene0000_00", 5): False,  # both "others"
        ("scene0001_00", 1): True,
    }


def test_scan2cap_groups_descriptions_per_object():
    records = [
        ScanReferRecord("scene0001_00", 4, "desk", "0", "the desk."),
        ScanReferRecord("scene0000_00", 7, "bed", "0", "a bed."),
        ScanReferRecord("scene0001_00", 4, "desk", "1", "a brown desk."),
    ]
    assert scan2cap_objects(records) == [
        Scan2CapObject("scene0000_00", 7, "bed", ("0",), ("a bed.",)),
        Scan2CapObject("scene0001_00", 4, "desk", ("0", "1"), ("the desk.", "a brown desk.")),
    ]
    assert scan2cap_objects(records)[1].key == "scene0001_00|4"


def test_row_issue_reads_as_file_and_row():
    assert str(RowIssue("/a/ScanQA_v1.0_val.json", 4, "missing field 'question'")) == (
        "/a/ScanQA_v1.0_val.json row 4: missing field 'question'"
    )
