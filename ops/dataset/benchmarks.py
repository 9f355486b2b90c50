"""Benchmark readers: ScanRefer, ScanQA, SQA3D, Multi3DRefer (published schemas), Scan2Cap from ScanRefer.

Each reader loads one split's published file(s) into typed records, reporting malformed rows as
``ops.dataset.annotations`` describes. Object ids are ScanNet aggregation ``objectId``s (0-based). Rows can be
restricted to a set of scene ids. ``load_benchmarks`` reads one split of every requested benchmark.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.dataset.annotations import (
    FILE_NAMES,
    Loaded,
    OnError,
    RowError,
    RowIssue,
    field_value,
    finish_loading,
    id_text_field,
    json_list,
    keep_scene,
    load_records,
    object_id_value,
    object_ids_field,
    parse_rows,
    read_json_file,
    scene_field,
    strings_field,
    text_field,
)
from ops.scannet.annotations import LabelRow, read_label_map

MULTI3DREFER_EVAL_TYPES = ("zt_wo_d", "zt_w_d", "st_wo_d", "st_w_d", "mt")

# ScanRefer's 18 detection classes (ScanRefer DC.type2class); everything else is "others".
SCANREFER_CLASSES = (
    "cabinet",
    "bed",
    "chair",
    "sofa",
    "table",
    "door",
    "window",
    "bookshelf",
    "picture",
    "counter",
    "desk",
    "curtain",
    "refrigerator",
    "shower curtain",
    "toilet",
    "sink",
    "bathtub",
    "others",
)


@dataclass(frozen=True)
class ScanReferRecord:
    """One ScanRefer description of one object."""

    scene_id: str
    object_id: int
    object_name: str
    ann_id: str
    description: str


@dataclass(frozen=True)
class ScanQARecord:
    """One ScanQA question; ``answers`` as published (test files have none)."""

    scene_id: str
    question_id: str
    question: str
    answers: tuple[str, ...]
    object_ids: tuple[int, ...]
    object_names: tuple[str, ...]


@dataclass(frozen=True)
class SQA3DRecord:
    """One SQA3D question joined with its annotation by ``question_id``."""

    scene_id: str
    question_id: str
    situation: str
    alternative_situations: tuple[str, ...]
    question: str
    answers: tuple[str, ...]
    question_type: str  # as published ("what", "is", ...); Chat-Scene's sqa_type is derived from the question


@dataclass(frozen=True)
class Multi3DReferRecord:
    """One Multi3DRefer description; ``object_ids`` is empty for zero-target queries."""

    scene_id: str
    ann_id: str
    object_ids: tuple[int, ...]
    object_name: str
    description: str
    eval_type: str


@dataclass(frozen=True)
class Scan2CapObject:
    """One described object (Scan2Cap = ScanRefer descriptions grouped by object), descriptions in file order."""

    scene_id: str
    object_id: int
    object_name: str
    ann_ids: tuple[str, ...]
    descriptions: tuple[str, ...]

    @property
    def key(self) -> str:
        """The Scan2Cap corpus key ``<scene_id>|<object_id>``."""
        return f"{self.scene_id}|{self.object_id}"


def load_scanrefer(
    path: str | Path, scene_ids: Collection[str] | None = None, on_error: OnError = "raise"
) -> Loaded[ScanReferRecord]:
    """``ScanRefer_filtered_<split>.json``; (scene, object_id, ann_id) must be unique."""
    path = Path(path)

    def parse(row: Any) -> ScanReferRecord:
        object_id = object_id_value(field_value(row, "object_id"), "object_id")
        return ScanReferRecord(
            scene_field(row),
            object_id,
            text_field(row, "object_name"),
            id_text_field(row, "ann_id"),
            text_field(row, "description"),
        )

    return load_records(path, parse, lambda r: (r.scene_id, r.object_id, r.ann_id), scene_ids, on_error)


def load_scanqa(
    path: str | Path, scene_ids: Collection[str] | None = None, on_error: OnError = "raise", need_answers: bool = True
) -> Loaded[ScanQARecord]:
    """``ScanQA_v1.0_<split>.json``; ``question_id`` must be unique. ``object_ids`` (the code's field; the docs say
    ``object_id``) may be absent (test files). ``need_answers=False`` accepts the answer-less test files."""
    path = Path(path)

    def parse(row: Any) -> ScanQARecord:
        answers = strings_field(row, "answers") if need_answers or "answers" in row else ()
        if need_answers and not any(a.strip() for a in answers):
            raise RowError("'answers' is empty")
        has_objects = isinstance(row, dict) and "object_ids" in row
        object_ids = object_ids_field(row, "object_ids") if has_objects else ()
        names = strings_field(row, "object_names") if has_objects and "object_names" in row else ()
        return ScanQARecord(
            scene_field(row), id_text_field(row, "question_id"), text_field(row, "question"), answers, object_ids, names
        )

    return load_records(path, parse, lambda r: r.question_id, scene_ids, on_error)


def load_sqa3d(
    questions_path: str | Path,
    annotations_path: str | Path,
    scene_ids: Collection[str] | None = None,
    on_error: OnError = "raise",
) -> Loaded[SQA3DRecord]:
    """SQA3D ``v1_balanced_questions_*`` joined with ``v1_balanced_sqa_annotations_*`` by ``question_id``.

    A question without an annotation (or the reverse), or whose scene differs between the files, is an issue.
    """
    questions_path, annotations_path = Path(questions_path), Path(annotations_path)

    def parse_question(row: Any) -> tuple[str, str, str, tuple[str, ...], str]:
        has_alternatives = isinstance(row, dict) and "alternative_situation" in row
        alternatives = strings_field(row, "alternative_situation") if has_alternatives else ()
        return (
            id_text_field(row, "question_id"),
            scene_field(row),
            text_field(row, "situation"),
            alternatives,
            text_field(row, "question"),
        )

    def parse_annotation(row: Any) -> tuple[str, str, tuple[str, ...], str]:
        answers = field_value(row, "answers")
        if not isinstance(answers, list) or not answers:
            raise RowError("'answers' must be a non-empty list")
        texts = tuple(text_field(a, "answer") for a in answers)
        question_type = text_field(row, "question_type", allow_empty=True) if "question_type" in row else ""
        return id_text_field(row, "question_id"), scene_field(row), texts, question_type

    question_rows = json_list(questions_path, read_json_file(questions_path), "questions")
    annotation_rows = json_list(annotations_path, read_json_file(annotations_path), "annotations")
    questions, issues = parse_rows(questions_path, question_rows, parse_question, key=lambda q: q[0])
    annotations, more = parse_rows(annotations_path, annotation_rows, parse_annotation, key=lambda a: a[0])
    issues += more
    by_id = {a[0]: (index, a) for index, a in annotations}
    records = []
    matched = set()
    for index, (qid, scene_id, situation, alternatives, question) in questions:
        if qid not in by_id:
            issues.append(RowIssue(str(questions_path), index, f"question_id {qid!r} has no annotation"))
            continue
        a_index, (_, a_scene, answers, question_type) = by_id[qid]
        matched.add(qid)
        if a_scene != scene_id:
            reason = f"question_id {qid!r}: scene {a_scene!r} differs from the question's {scene_id!r}"
            issues.append(RowIssue(str(annotations_path), a_index, reason))
            continue
        if keep_scene(scene_id, scene_ids):
            records.append(SQA3DRecord(scene_id, qid, situation, alternatives, question, answers, question_type))
    for index, (qid, *_) in annotations:
        if qid not in matched:
            issues.append(RowIssue(str(annotations_path), index, f"question_id {qid!r} has no question"))
    return finish_loading(records, issues, on_error)


def load_multi3drefer(
    path: str | Path, scene_ids: Collection[str] | None = None, on_error: OnError = "raise"
) -> Loaded[Multi3DReferRecord]:
    """``multi3drefer_<split>.json``; zero-target eval types have no ``object_ids`` and the others have some;
    (scene, ann_id) must be unique."""
    path = Path(path)

    def parse(row: Any) -> Multi3DReferRecord:
        eval_type = text_field(row, "eval_type")
        if eval_type not in MULTI3DREFER_EVAL_TYPES:
            raise RowError(f"'eval_type' {eval_type!r} is not one of {MULTI3DREFER_EVAL_TYPES}")
        object_ids = object_ids_field(row, "object_ids")
        if eval_type.startswith("zt") != (len(object_ids) == 0):
            raise RowError(f"eval_type {eval_type!r} does not fit {len(object_ids)} target(s)")
        if len(set(object_ids)) != len(object_ids):
            raise RowError(f"'object_ids' repeats an id: {list(object_ids)}")
        return Multi3DReferRecord(
            scene_field(row),
            id_text_field(row, "ann_id"),
            object_ids,
            text_field(row, "object_name"),
            text_field(row, "description"),
            eval_type,
        )

    return load_records(path, parse, lambda r: (r.scene_id, r.ann_id), scene_ids, on_error)


def scan2cap_objects(records: Iterable[ScanReferRecord]) -> list[Scan2CapObject]:
    """Scan2Cap's corpus: ScanRefer descriptions grouped per (scene, object), sorted by scene then objectId."""
    grouped: dict[tuple[str, int], list[ScanReferRecord]] = {}
    for record in records:
        grouped.setdefault((record.scene_id, record.object_id), []).append(record)
    return [
        Scan2CapObject(
            scene_id, object_id, rows[0].object_name, tuple(r.ann_id for r in rows), tuple(r.description for r in rows)
        )
        for (scene_id, object_id), rows in sorted(grouped.items())
    ]


def scanrefer_class(object_name: str, label_map: Mapping[str, LabelRow]) -> str:
    """ScanRefer's 18-class name of an object: ``object_name`` (underscores read as spaces) → the label TSV's
    ``nyu40class``; "others" when the class is not one of the 18 or the name is not in the TSV."""
    row = label_map.get(" ".join(object_name.split("_")))
    return row.nyu40class if row is not None and row.nyu40class in SCANREFER_CLASSES else "others"


def scanrefer_unique_lookup(
    records: Iterable[ScanReferRecord], label_map: Mapping[str, LabelRow]
) -> dict[tuple[str, int], bool]:
    """ScanRefer's unique/multiple split: (scene, objectId) → True when the object's class occurs once among the
    scene's described objects (ScanRefer ``_get_unique_multiple_lookup``)."""
    classes: dict[tuple[str, int], str] = {}
    for record in records:
        classes.setdefault((record.scene_id, record.object_id), scanrefer_class(record.object_name, label_map))
    counts = Counter((scene_id, cls) for (scene_id, _), cls in classes.items())
    return {key: counts[(key[0], cls)] == 1 for key, cls in classes.items()}


# -- one split of every benchmark ---------------------------------------------------------------------------------


@dataclass
class Benchmarks:
    """One split of every requested benchmark; ``scanrefer_unique`` maps (scene, objectId) → unique."""

    split: str
    scanrefer: list[ScanReferRecord] = field(default_factory=list)
    scanqa: list[ScanQARecord] = field(default_factory=list)
    sqa3d: list[SQA3DRecord] = field(default_factory=list)
    multi3drefer: list[Multi3DReferRecord] = field(default_factory=list)
    scan2cap: list[Scan2CapObject] = field(default_factory=list)
    scanrefer_unique: dict[tuple[str, int], bool] = field(default_factory=dict)
    issues: list[RowIssue] = field(default_factory=list)

    def scene_ids(self) -> list[str]:
        """Every scene that some record refers to, sorted."""
        rows: list[Any] = [*self.scanrefer, *self.scanqa, *self.sqa3d, *self.multi3drefer, *self.scan2cap]
        return sorted({r.scene_id for r in rows})


BENCHMARK_TASKS = ("scanqa", "sqa3d", "scanrefer", "multi3drefer", "scan2cap")


def load_benchmarks(
    ann_dir: str | Path,
    split: str,
    tasks: Iterable[str] = BENCHMARK_TASKS,
    scene_ids: Collection[str] | None = None,
    on_error: OnError = "raise",
) -> Benchmarks:
    """Load the published files of ``split`` (``train``/``val``) for ``tasks`` from ``ann_dir``.

    ScanRefer needs ``scannetv2-labels.combined.tsv`` too (its unique/multiple split). With ``on_error="raise"``
    the first file with malformed rows raises; with ``"collect"`` every issue is in ``Benchmarks.issues``.
    """
    ann_dir = Path(ann_dir)
    tasks = tuple(tasks)
    unknown = set(tasks) - set(BENCHMARK_TASKS)
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)}; known: {BENCHMARK_TASKS}")

    def file(kind: str) -> Path:
        return ann_dir / FILE_NAMES[kind].format(split=split)

    out = Benchmarks(split)

    def take(loaded: Loaded[Any]) -> list[Any]:
        out.issues += loaded.issues
        return loaded.records

    if "scanqa" in tasks:
        out.scanqa = take(load_scanqa(file("scanqa"), scene_ids, on_error))
    if "sqa3d" in tasks:
        out.sqa3d = take(load_sqa3d(file("sqa3d_questions"), file("sqa3d_annotations"), scene_ids, on_error))
    if "multi3drefer" in tasks:
        out.multi3drefer = take(load_multi3drefer(file("multi3drefer"), scene_ids, on_error))
    if "scanrefer" in tasks or "scan2cap" in tasks:
        scanrefer = take(load_scanrefer(file("scanrefer"), scene_ids, on_error))
        if "scanrefer" in tasks:
            out.scanrefer = scanrefer
            out.scanrefer_unique = scanrefer_unique_lookup(scanrefer, read_label_map(file("labels")))
        if "scan2cap" in tasks:
            out.scan2cap = scan2cap_objects(scanrefer)
    return out
