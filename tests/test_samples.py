"""Samples: ID mapping, the exact prompt/answer formats of every task, variants, and a build over synthetic scenes."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from fixtures_dataset import PROMPT_SETTINGS

from ops.core.errors import SceneInputError
from ops.dataset.benchmarks import (
    Benchmarks,
    Multi3DReferRecord,
    Scan2CapObject,
    ScanQARecord,
    ScanReferRecord,
    SQA3DRecord,
    load_benchmarks,
)
from ops.dataset.sample_builders import BuildSettings, build_samples
from ops.dataset.samples import (
    GROUNDING_TEMPLATES,
    MULTI3DREFER_TEMPLATES,
    SCAN2CAP_TEMPLATES,
    capitalize_sentences,
    multi3drefer_answer,
    qa_answer,
    read_samples_jsonl,
    strip_description,
    write_samples_jsonl,
)
from ops.dataset.scene_context import ObjectMatch, SceneContext, load_scene_context, match_object, match_scan2cap
from ops.prompts.driver import prepare_scene
from ops.prompts.instances import box_iou_3d
from ops.scannet.scene import open_scene

SCENE = "scene0100_00"


def _context(source: str, boxes: np.ndarray, object_ids, gt_boxes: dict[int, np.ndarray]) -> SceneContext:
    rel = f"scenes/{SCENE}"
    return SceneContext(
        SCENE,
        source,
        np.asarray(boxes, np.float64),
        tuple(object_ids),
        gt_boxes,
        f"{rel}/bev/bev.png",
        (f"{rel}/frames/frame_00.jpg", f"{rel}/frames/frame_01.jpg"),
        (f"{rel}/frames/raw_00.jpg", f"{rel}/frames/raw_01.jpg"),
        f"{rel}/instances/boxes.npy",
        "0" * 64,
    )


@pytest.fixture
def gt_scene() -> SceneContext:
    """20 GT instances: marker k shows ScanNet object 100 + k; object 999 has a GT box but no marker."""
    gt = {100 + k: np.array([2.0 * k, 0.0, 0.5, 1.0, 1.0, 1.0]) for k in range(20)}
    boxes = np.stack([gt[100 + k] for k in range(20)])
    gt[999] = np.array([80.0, 0.0, 0.5, 1.0, 1.0, 1.0])
    return _context("gt", boxes, [100 + k for k in range(20)], gt)


A = np.array([0.0, 0.0, 0.5, 1.0, 1.0, 1.0])
B = np.array([5.0, 0.0, 0.5, 1.0, 1.0, 1.0])


@pytest.fixture
def proposal_scene() -> SceneContext:
    """Proposals: p0 = A shifted 0.1 m (IoU 0.818), p1 = A (IoU 1), p2 = B stretched to 2.5 m (IoU 0.4), p3 = p1.

    GT objects: 1 = A, 2 = B, 3 far from every proposal, 4 = A grown to 1.1 m (best proposal p1, as for object 1).
    """
    gt = {1: A, 2: B, 3: np.array([20.0, 0.0, 0.5, 1.0, 1.0, 1.0]), 4: np.array([0.0, 0.0, 0.5, 1.1, 1.1, 1.1])}
    proposals = np.stack([A + [0.1, 0, 0, 0, 0, 0], A, B * [1, 1, 1, 2.5, 1, 1], A])
    return _context("proposals", proposals, [None] * 4, gt)


# -- text formats -------------------------------------------------------------------------------------------------


def test_answer_and_text_formats():
    assert qa_answer("brown") == "Brown."
    assert qa_answer(" on the left of the TV.") == "On the left of the tv."  # str.capitalize, as Chat-Scene
    assert multi3drefer_answer([]) == "No."
    assert multi3drefer_answer([3]) == "Yes. <OBJ003>."
    assert multi3drefer_answer([17, 3]) == "Yes. <OBJ003> and <OBJ017>."
    assert multi3drefer_answer([9, 1, 4]) == "Yes. <OBJ001>, <OBJ004>, and <OBJ009>."
    assert multi3drefer_answer([120, 2, 7, 5]) == "Yes. <OBJ002>, <OBJ005>, <OBJ007>, and <OBJ120>."
    assert capitalize_sentences("this is a chair. it is red!  what? ok") == "This is a chair. It is red! What? Ok"
    assert strip_description("the red chair .  ") == "the red chair"
    assert strip_description("is it a chair?") == "is it a chair"
    assert strip_description("no punctuation") == "no punctuation"
    assert len(GROUNDING_TEMPLATES) == 9 and len(MULTI3DREFER_TEMPLATES) == 10 and len(SCAN2CAP_TEMPLATES) == 10
    assert all("<description>" in t for t in GROUNDING_TEMPLATES + MULTI3DREFER_TEMPLATES)
    assert all("<id>" in t for t in SCAN2CAP_TEMPLATES)


# -- golden samples -----------------------------------------------------------------------------------------------


def _golden_benchmarks(split: str) -> Benchmarks:
    m3d = [
        ((), "zt_w_d", "the green lamp."),
        ((103,), "st_wo_d", "the lamp on the desk!"),
        ((117, 103), "mt", "the lamps next to the bed"),
        ((109, 101, 104), "mt", "all the chairs?"),
    ]
    return Benchmarks(
        split,
        scanqa=[
            ScanQARecord(
                SCENE, "train-q0", "What color is the chair?", ("brown", "dark brown", "brown"), (103,), ("chair",)
            )
        ],
        sqa3d=[SQA3DRecord(SCENE, "7", "I am sitting on the bed.", (), "What is in front of me?", ("desk",), "what")],
        scanrefer=[ScanReferRecord(SCENE, 112, "chair", "0", "the brown chair is next to the desk .")],
        multi3drefer=[
            Multi3DReferRecord(SCENE, str(n), ids, "lamp", text, eval_type)
            for n, (ids, eval_type, text) in enumerate(m3d)
        ],
        scan2cap=[
            Scan2CapObject(
                SCENE, 105, "lamp", ("0", "1"), ("this is a lamp. it is white.", "a white lamp!  next to the bed.")
            )
        ],
        scanrefer_unique={(SCENE, 112): True},
    )


IMAGES = "<image><image><image>"  # BEV + 2 frames


def test_golden_train_samples(gt_scene):
    result = build_samples(_golden_benchmarks("train"), {SCENE: gt_scene}, BuildSettings(split="train", seed=0))
    got = {s.sample_id: (s.user_text, s.answer, s.target_ids) for s in result.samples}
    qa = " Answer the question using a single word or phrase."
    assert got == {
        "scanqa-scene0100_00-train-q0-0": (f"{IMAGES}What color is the chair?{qa}", "Brown.", (3,)),
        "scanqa-scene0100_00-train-q0-1": (f"{IMAGES}What color is the chair?{qa}", "Dark brown.", (3,)),
        "sqa3d-scene0100_00-7": (f"{IMAGES}I am sitting on the bed. What is in front of me?{qa}", "Desk.", ()),
        "scanrefer-scene0100_00-112-0": (
            f'{IMAGES}Share the ID of the object that best corresponds to the description "the brown chair is next '
            'to the desk".',
            "<OBJ012>.",
            (12,),
        ),
        "multi3drefer-scene0100_00-0": (
            f'{IMAGES}Do any objects match the description of "the green lamp"? If they do, please share the IDs of '
            "those objects.",
            "No.",
            (),
        ),
        "multi3drefer-scene0100_00-1": (
            f'{IMAGES}Are there objects that correspond to the description "the lamp on the desk"? If there are, '
            "kindly list their IDs.",
            "Yes. <OBJ003>.",
            (3,),
        ),
        "multi3drefer-scene0100_00-2": (
            f'{IMAGES}Do any objects match the description of "the lamps next to the bed"? If they do, please share '
            "the IDs of those objects.",
            "Yes. <OBJ003> and <OBJ017>.",
            (3, 17),
        ),
        "multi3drefer-scene0100_00-3": (
            f'{IMAGES}Are there any objects fitting the description of "all the chairs"? If so, kindly provide the '
            "IDs for those objects.",
            "Yes. <OBJ001>, <OBJ004>, and <OBJ009>.",
            (1, 4, 9),
        ),
        "scan2cap-scene0100_00-105-0": (
            f"{IMAGES}Describe the appearance of the <OBJ005>, then elaborate on its positioning relative to other "
            "objects in the scene.",
            "This is a lamp. It is white.",
            (5,),
        ),
        "scan2cap-scene0100_00-105-1": (
            f"{IMAGES}First, depict the physical characteristics of the <OBJ005>, followed by its placement and "
            "interactions within the surrounding environment.",
            "A white lamp! Next to the bed.",
            (5,),
        ),
    }
    assert all(s.eval is None for s in result.samples)
    assert [s.sample_id for s in result.samples] == sorted(got)
    assert result.samples[0].messages() == [
        {"role": "user", "content": result.samples[0].user_text},
        {"role": "assistant", "content": result.samples[0].answer},
    ]
    stats = {task: s.to_dict() for task, s in result.stats.items()}
    assert stats["scanqa"] == {
        "records": 1,
        "kept": 1,
        "samples": 2,
        "dropped": 0,
        "dropped_by_reason": {},
        "unknown_objects": [],
    }
    assert stats["multi3drefer"]["samples"] == 4 and stats["scan2cap"]["samples"] == 2


def test_golden_val_samples_carry_eval_fields(gt_scene):
    result = build_samples(_golden_benchmarks("val"), {SCENE: gt_scene}, BuildSettings(split="val", seed=0))
    by_id = {s.sample_id: s for s in result.samples}
    assert sorted(by_id) == [
        "multi3drefer-scene0100_00-0",
        "multi3drefer-scene0100_00-1",
        "multi3drefer-scene0100_00-2",
        "multi3drefer-scene0100_00-3",
        "scan2cap-scene0100_00-105",
        "scanqa-scene0100_00-train-q0",
        "scanrefer-scene0100_00-112-0",
        "sqa3d-scene0100_00-7",
    ]
    boxes = {"proposal_boxes": "scenes/scene0100_00/instances/boxes.npy", "proposal_boxes_sha256": "0" * 64}
    assert by_id["scanqa-scene0100_00-train-q0"].eval == {
        "question_id": "train-q0",
        "refs": ["brown", "dark brown", "brown"],
        "object_ids": [103],
    }
    assert by_id["scanqa-scene0100_00-train-q0"].answer == "Brown."
    assert by_id["sqa3d-scene0100_00-7"].eval == {
        "question_id": "7",
        "refs": ["desk"],
        "sqa_type": 0,
        "question_type": "what",
    }
    assert by_id["scanrefer-scene0100_00-112-0"].eval == {
        "object_id": 112,
        "ann_id": "0",
        "gt_box": [24.0, 0.0, 0.5, 1.0, 1.0, 1.0],
        "unique": True,
        "pred_id": 12,
        "iou": 1.0,
        **boxes,
    }
    assert by_id["multi3drefer-scene0100_00-2"].eval == {
        "ann_id": "2",
        "eval_type": "mt",
        "object_ids": [117, 103],
        "gt_boxes": [[34.0, 0.0, 0.5, 1.0, 1.0, 1.0], [6.0, 0.0, 0.5, 1.0, 1.0, 1.0]],
        **boxes,
    }
    assert by_id["multi3drefer-scene0100_00-0"].eval["gt_boxes"] == []
    caption = by_id["scan2cap-scene0100_00-105"]
    assert caption.answer == "This is a lamp. It is white." and caption.target_ids == (5,)
    assert caption.eval == {
        "key": "scene0100_00|105",
        "object_id": 105,
        "pred_id": 5,
        "iou": 1.0,
        "refs": ["This is a lamp. It is white.", "A white lamp! Next to the bed."],
        "gt_box": [10.0, 0.0, 0.5, 1.0, 1.0, 1.0],
        **boxes,
    }
    assert result.scan2cap_corpus == {"scene0100_00|105": caption.eval["refs"]}


def test_variants_choose_the_images(gt_scene):
    bench = _golden_benchmarks("train")
    rel = f"scenes/{SCENE}"
    expected = {
        "marked": (f"{rel}/bev/bev.png", f"{rel}/frames/frame_00.jpg", f"{rel}/frames/frame_01.jpg"),
        "no_bev": (f"{rel}/frames/frame_00.jpg", f"{rel}/frames/frame_01.jpg"),
        "unmarked": (f"{rel}/frames/raw_00.jpg", f"{rel}/frames/raw_01.jpg"),
    }
    for variant, images in expected.items():
        result = build_samples(bench, {SCENE: gt_scene}, BuildSettings(variant=variant, tasks=("sqa3d", "scanrefer")))
        assert [s.images for s in result.samples] == [images, images]
        assert all(s.user_text == "<image>" * len(images) + s.prompt for s in result.samples)
    with pytest.raises(ValueError, match="variant"):
        BuildSettings(variant="bev_only")


def test_seed_changes_template_choices_but_not_answers(gt_scene):
    bench = Benchmarks(
        "train", scanrefer=[ScanReferRecord(SCENE, 100 + k % 20, "chair", str(k), f"chair {k}.") for k in range(40)]
    )
    first = build_samples(bench, {SCENE: gt_scene}, BuildSettings(tasks=("scanrefer",), seed=0)).samples
    again = build_samples(bench, {SCENE: gt_scene}, BuildSettings(tasks=("scanrefer",), seed=0)).samples
    other = build_samples(bench, {SCENE: gt_scene}, BuildSettings(tasks=("scanrefer",), seed=1)).samples
    assert [s.to_dict() for s in first] == [s.to_dict() for s in again]
    assert [s.prompt for s in first] != [s.prompt for s in other]
    assert [s.answer for s in first] == [s.answer for s in other]
    used = {
        next(t for t in GROUNDING_TEMPLATES if s.prompt == t.replace("<description>", s.prompt.split('"')[1]))
        for s in first
    }
    assert len(used) >= 5  # the RNG spreads over the templates


# -- ID mapping ---------------------------------------------------------------------------------------------------


def test_gt_mapping_goes_through_labels_object_id(gt_scene):
    assert match_object(gt_scene, 112) == ObjectMatch(12, 1.0)
    assert match_object(gt_scene, 999) == ObjectMatch(None, 0.0)  # a GT object without a marker
    assert match_object(gt_scene, 5000) == ObjectMatch(None, 0.0)  # not an aggregation object
    bench = Benchmarks(
        "train",
        scanrefer=[
            ScanReferRecord(SCENE, 999, "wall", "0", "the wall."),
            ScanReferRecord(SCENE, 5000, "ghost", "0", "nothing."),
        ],
    )
    result = build_samples(bench, {SCENE: gt_scene}, BuildSettings(tasks=("scanrefer",)))
    assert result.samples == []
    assert result.stats["scanrefer"].to_dict()["dropped_by_reason"] == {"no_marker": 1, "unknown_object": 1}
    assert result.stats["scanrefer"].unknown_objects == [
        f"ScanRefer_filtered_train.json: scene {SCENE} has no object 5000 in its aggregation"
    ]


def test_annotations_naming_a_missing_object_are_reported_with_file_and_scene(gt_scene):
    bench = Benchmarks(
        "val",
        scanrefer=[
            ScanReferRecord(SCENE, 112, "chair", "0", "the chair."),
            ScanReferRecord(SCENE, 7777, "ghost", "1", "nothing."),
        ],
        multi3drefer=[Multi3DReferRecord(SCENE, "3", (112, 4242), "chair", "two chairs.", "mt")],
    )
    result = build_samples(bench, {SCENE: gt_scene}, BuildSettings(split="val", tasks=("scanrefer", "multi3drefer")))
    assert [s.sample_id for s in result.samples] == [f"scanrefer-{SCENE}-112-0"]  # the good record goes on
    assert result.stats["scanrefer"].to_dict()["unknown_objects"] == [
        f"ScanRefer_filtered_val.json: scene {SCENE} has no object 7777 in its aggregation"
    ]
    assert result.stats["multi3drefer"].to_dict()["unknown_objects"] == [
        f"multi3drefer_val.json: scene {SCENE} has no object 4242 in its aggregation"
    ]


def test_proposal_mapping_by_highest_iou(proposal_scene):
    assert match_object(proposal_scene, 1) == ObjectMatch(1, 1.0)  # p1 == A beats p0; p3 == A ties and loses
    assert match_object(proposal_scene, 2) == ObjectMatch(2, 0.4)
    assert match_object(proposal_scene, 3).iou == 0.0
    assert match_object(proposal_scene, 4).marker_id == 1
    iou = float(box_iou_3d(proposal_scene.boxes[0], A))
    assert iou == pytest.approx(0.9 / 1.1, abs=1e-6)

    refer = [ScanReferRecord(SCENE, oid, "box", "0", "a box.") for oid in (1, 2, 3)]
    m3d = [
        Multi3DReferRecord(SCENE, "0", (1, 2), "box", "the boxes.", "mt"),
        Multi3DReferRecord(SCENE, "1", (1, 4), "box", "the boxes.", "mt"),
    ]
    bench = Benchmarks("train", scanrefer=refer, multi3drefer=m3d)
    strict = build_samples(bench, {SCENE: proposal_scene}, BuildSettings(tasks=("scanrefer", "multi3drefer")))
    assert [(s.sample_id, s.answer) for s in strict.samples] == [("scanrefer-scene0100_00-1-0", "<OBJ001>.")]
    assert strict.stats["scanrefer"].to_dict()["dropped_by_reason"] == {"low_iou": 2}
    assert strict.stats["multi3drefer"].to_dict()["dropped_by_reason"] == {"low_iou": 1, "duplicate_marker": 1}

    loose = build_samples(
        bench, {SCENE: proposal_scene}, BuildSettings(tasks=("scanrefer", "multi3drefer"), iou_threshold=0.25)
    )
    assert {s.sample_id: s.answer for s in loose.samples} == {
        "scanrefer-scene0100_00-1-0": "<OBJ001>.",
        "scanrefer-scene0100_00-2-0": "<OBJ002>.",
        "multi3drefer-scene0100_00-0": "Yes. <OBJ001> and <OBJ002>.",
    }

    # Val keeps every query with a GT box; the best match is the reference, whatever its IoU.
    val = build_samples(
        Benchmarks("val", scanrefer=refer, multi3drefer=m3d),
        {SCENE: proposal_scene},
        BuildSettings(split="val", tasks=("scanrefer", "multi3drefer")),
    )
    by_id = {s.sample_id: s for s in val.samples}
    assert len(by_id) == 5
    low = by_id["scanrefer-scene0100_00-2-0"].eval
    assert (low["pred_id"], low["iou"]) == (2, 0.4)
    assert by_id["multi3drefer-scene0100_00-1"].answer == "Yes. <OBJ001>."


def test_scan2cap_matching_with_proposals(proposal_scene):
    # p0, p1, p3 pick object 1 (or 4); object 1 keeps its best picker p1; p2 picks object 2; nothing overlaps 3.
    assert match_scan2cap(proposal_scene, [1, 2, 3]) == {1: ObjectMatch(1, 1.0), 2: ObjectMatch(2, 0.4)}
    objects = [Scan2CapObject(SCENE, oid, "box", ("0",), ("a box.",)) for oid in (1, 2, 3)]
    train = build_samples(
        Benchmarks("train", scan2cap=objects), {SCENE: proposal_scene}, BuildSettings(tasks=("scan2cap",))
    )
    assert [s.sample_id for s in train.samples] == ["scan2cap-scene0100_00-1-0"]
    assert "<OBJ001>" in train.samples[0].prompt and train.samples[0].answer == "A box."
    assert train.stats["scan2cap"].to_dict()["dropped_by_reason"] == {"low_iou": 1, "no_marker": 1}
    val = build_samples(
        Benchmarks("val", scan2cap=objects), {SCENE: proposal_scene}, BuildSettings(split="val", tasks=("scan2cap",))
    )
    assert [s.eval["pred_id"] for s in val.samples] == [1, 2]
    assert sorted(val.scan2cap_corpus) == [f"{SCENE}|1", f"{SCENE}|2", f"{SCENE}|3"]  # unmatched objects too


def test_scenes_not_built_are_counted_not_silently_dropped(gt_scene):
    bench = _golden_benchmarks("train")
    result = build_samples(bench, {}, BuildSettings())
    assert result.samples == []
    for stats in result.stats.values():
        assert stats.to_dict()["dropped_by_reason"] == {"scene_unavailable": stats.records} and stats.records > 0
    with pytest.raises(ValueError, match="split"):
        build_samples(bench, {SCENE: gt_scene}, BuildSettings(split="val"))


def test_samples_jsonl_roundtrip(tmp_path, gt_scene):
    samples = build_samples(_golden_benchmarks("val"), {SCENE: gt_scene}, BuildSettings(split="val")).samples
    path = tmp_path / "samples.jsonl"
    write_samples_jsonl(path, samples)
    assert [s.to_dict() for s in read_samples_jsonl(path)] == [s.to_dict() for s in samples]
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(SceneInputError, match=f"line {len(samples) + 1}"):
        read_samples_jsonl(path)


# -- synthetic scenes end to end ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(prepared_scenes, tmp_path_factory):
    """The shared prepared scenes (GT instances under ``root``) plus the train scene with clusters under
    ``clusters``."""
    base, truth = prepared_scenes.base, prepared_scenes.truth
    clusters = tmp_path_factory.mktemp("clusters")
    for scene_id in truth.train_ids:
        prepare_scene(
            prepared_scenes.scan(scene_id),
            clusters / "scenes" / scene_id,
            replace(PROMPT_SETTINGS, instance_source="clusters"),
        )
    return base, truth, clusters


def _contexts(base, root, scene_ids):
    return {s: load_scene_context(root, base / "raw" / "scans" / s) for s in scene_ids}


def test_scene_context_from_artifacts(synthetic):
    base, truth, _ = synthetic
    scene_id = truth.val_ids[0]
    ctx = load_scene_context(base / "root", base / "raw" / "scans" / scene_id)
    labels = json.loads((base / "root" / "scenes" / scene_id / "instances" / "labels.json").read_text())
    assert ctx.source == "gt" and ctx.object_ids == tuple(o["object_id"] for o in labels["objects"])
    assert ctx.images("marked") == (
        f"scenes/{scene_id}/bev/bev.png",
        *(f"scenes/{scene_id}/frames/frame_{n:02d}.jpg" for n in range(8)),
    )
    assert ctx.images("unmarked") == tuple(f"scenes/{scene_id}/frames/raw_{n:02d}.jpg" for n in range(8))
    objects = open_scene(base / "raw" / "scans" / scene_id).objects()
    assert set(ctx.gt_boxes) == {o["object_id"] for o in objects}  # walls and floor included, as Chat-Scene's GT
    assert len(ctx.gt_boxes) > len(ctx.boxes)


def test_scene_context_errors_name_scene_and_file(synthetic, tmp_path):
    base, truth, _ = synthetic
    scene_id = truth.val_ids[0]
    root = tmp_path / "root"
    shutil.copytree(base / "root" / "scenes" / scene_id, root / "scenes" / scene_id)
    (root / "scenes" / scene_id / "frames" / "raw_03.jpg").unlink()
    with pytest.raises(SceneInputError, match=rf"scene '{scene_id}'.*raw_03\.jpg.*image missing"):
        load_scene_context(root, base / "raw" / "scans" / scene_id)
    np.save(root / "scenes" / scene_id / "instances" / "boxes.npy", np.zeros((2, 6), np.float32))
    with pytest.raises(SceneInputError, match=r"labels\.json.*label rows for 2 boxes"):
        load_scene_context(root, base / "raw" / "scans" / scene_id)


def test_build_over_synthetic_scenes(synthetic):
    base, truth, _ = synthetic
    ann = base / "raw" / "annotations"
    train = load_benchmarks(ann, "train")
    contexts = _contexts(base, base / "root", train.scene_ids())
    result = build_samples(train, contexts)
    tasks = {s.task for s in result.samples}
    assert tasks == {"scanqa", "sqa3d", "scanrefer", "multi3drefer", "scan2cap"}
    assert len({s.sample_id for s in result.samples}) == len(result.samples)
    for s in result.samples:
        assert s.user_text.count("<image>") == len(s.images) == 9 and s.images[0].endswith("bev/bev.png")
    for task, stats in result.stats.items():
        stats = stats.to_dict()
        assert stats["records"] == stats["kept"] + stats["dropped"], task
    # GT mapping: a ScanRefer target's marker row carries the described object's ScanNet objectId.
    for record in train.scanrefer:
        sample = next(
            s
            for s in result.samples
            if s.sample_id == f"scanrefer-{record.scene_id}-{record.object_id}-{record.ann_id}"
        )
        ctx = contexts[record.scene_id]
        assert ctx.object_ids[sample.target_ids[0]] == record.object_id
        assert sample.answer == f"<OBJ{sample.target_ids[0]:03d}>."

    val = load_benchmarks(ann, "val")
    val_result = build_samples(val, _contexts(base, base / "root", val.scene_ids()), BuildSettings(split="val"))
    assert all(s.eval is not None for s in val_result.samples)
    gt = {o["object_id"]: o["box"] for o in open_scene(base / "raw" / "scans" / truth.val_ids[0]).objects()}
    for s in val_result.samples:
        if s.task == "scanrefer":
            assert s.eval["gt_box"] == gt[s.eval["object_id"]] and isinstance(s.eval["unique"], bool)
        if s.task == "sqa3d":
            assert s.eval["sqa_type"] in range(6)
    assert len(val_result.scan2cap_corpus) == len(val.scan2cap)


def test_build_with_cluster_proposals_filters_by_iou(synthetic):
    base, truth, clusters = synthetic
    train = load_benchmarks(base / "raw" / "annotations", "train")
    contexts = _contexts(base, clusters, truth.train_ids)
    ctx = contexts[truth.train_ids[0]]
    assert ctx.source == "clusters" and set(ctx.object_ids) == {None}
    result = build_samples(train, contexts, BuildSettings(tasks=("scanrefer", "multi3drefer")))
    refer = [s for s in result.samples if s.task == "scanrefer"]
    assert refer, "some ScanRefer targets should match a cluster with IoU >= 0.5"
    for s in refer:
        object_id = int(s.sample_id.split("-")[2])
        assert box_iou_3d(ctx.boxes[s.target_ids[0]], ctx.gt_boxes[object_id]) >= 0.5
    dropped = result.stats["scanrefer"].to_dict()
    assert dropped["dropped_by_reason"].get("low_iou", 0) > 0
    assert dropped["kept"] + dropped["dropped"] == dropped["records"] == len(train.scanrefer)
