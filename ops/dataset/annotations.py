"""Benchmark annotation loaders: ScanRefer, ScanQA, SQA3D, Multi3DRefer (published schemas), Scan2Cap from ScanRefer.

Each loader reads one split's published file(s) (SCANNET_METRICS_PEERS.md §1.7) into typed records. A file that
cannot be read, is not UTF-8 or is not JSON of the published shape raises ``SceneInputError`` naming the file. A
malformed row (missing or mistyped field, invalid scene id, duplicate id, ...) is never dropped silently: with
``on_error="raise"`` (default) every bad row of the file is listed in one ``AnnotationError``; with
``on_error="collect"`` the good rows are returned and the bad ones come back as ``RowIssue``s. ``row`` is the 0-based
index in the file's list (SQA3D: in ``questions`` or ``annotations``).

Object ids are ScanNet aggregation ``objectId``s (0-based). Rows can be restricted to a set of scene ids.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from ops.core.errors import SceneInputError
from ops.scannet.annotations import LabelRow, read_label_map
from ops.scannet.scene_id import SCENE_ID_PATTERN

OnError = Literal["raise", "collect"]
MULTI3DREFER_EVAL_TYPES = ("zt_wo_d", "zt_w_d", "st_wo_d", "st_w_d", "mt")
IMAGE_PLACEHOLDER = "<image>"  # LLaMA-Factory's image token; annotation text must not contain it
MAX_LISTED_ISSUES = 20

FILE_NAMES = {
    "scanrefer": "ScanRefer_filtered_{split}.json",
    "scanqa": "ScanQA_v1.0_{split}.json",
    "sqa3d_questions": "v1_balanced_questions_{split}_scannetv2.json",
    "sqa3d_annotations": "v1_balanced_sqa_annotations_{split}_scannetv2.json",
    "multi3drefer": "multi3drefer_{split}.json",
    "split": "scannetv2_{split}.txt",
    "labels": "scannetv2-labels.combined.tsv",
}

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
class RowIssue:
    """One malformed row: the file, its 0-based index in the file's list, and why."""

    file: str
    row: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file} row {self.row}: {self.reason}"


class AnnotationError(SceneInputError):
    """Malformed rows in annotation file(s); ``issues`` lists every one."""

    def __init__(self, issues: list[RowIssue]):
        self.issues = list(issues)
        listed = "; ".join(f"row {i.row} of {Path(i.file).name}: {i.reason}" for i in self.issues[:MAX_LISTED_ISSUES])
        more = f" (+{len(self.issues) - MAX_LISTED_ISSUES} more)" if len(self.issues) > MAX_LISTED_ISSUES else ""
        super().__init__(
            None, self.issues[0].file if self.issues else None, f"{len(self.issues)} malformed row(s): {listed}{more}"
        )

    def __reduce__(self):
        return (type(self), (self.issues,))


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


R = TypeVar("R")


@dataclass
class Loaded(Generic[R]):
    """Records of one loader and, with ``on_error="collect"``, the malformed rows left out."""

    records: list[R]
    issues: list[RowIssue] = field(default_factory=list)


class _RowError(ValueError):
    pass


# -- file and field helpers ---------------------------------------------------------------------------------------


def read_json_file(path: str | Path) -> Any:
    """Parse a UTF-8 JSON file; any failure raises ``SceneInputError`` naming the file."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise SceneInputError(None, path, f"cannot read annotation file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SceneInputError(None, path, f"not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SceneInputError(None, path, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc


def _json_list(path: Path, data: Any, key: str | None = None) -> list[Any]:
    if key is not None:
        if not isinstance(data, dict) or key not in data:
            raise SceneInputError(None, path, f"expected a JSON object with a {key!r} list")
        data = data[key]
    if not isinstance(data, list):
        where = f" under {key!r}" if key else ""
        raise SceneInputError(None, path, f"expected a JSON list{where}, got {type(data).__name__}")
    return data


def _get(row: Any, name: str) -> Any:
    if not isinstance(row, dict):
        raise _RowError(f"expected an object, got {type(row).__name__}")
    if name not in row:
        raise _RowError(f"missing field {name!r}")
    return row[name]


def _text(row: Any, name: str, allow_empty: bool = False) -> str:
    value = _get(row, name)
    if not isinstance(value, str):
        raise _RowError(f"{name!r} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise _RowError(f"{name!r} is empty")
    if IMAGE_PLACEHOLDER in value:
        raise _RowError(f"{name!r} contains the image placeholder {IMAGE_PLACEHOLDER!r}")
    return value


def _object_id(value: Any, name: str) -> int:
    """An objectId: an int or a decimal string (ScanRefer publishes strings), >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _RowError(f"{name!r} must be an integer, got {value!r}")
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise _RowError(f"{name!r} must be an integer, got {value!r}")
        value = int(value)
    if value < 0:
        raise _RowError(f"{name!r} must be >= 0, got {value}")
    return value


def _object_ids(row: Any, name: str) -> tuple[int, ...]:
    value = _get(row, name)
    if not isinstance(value, list):
        raise _RowError(f"{name!r} must be a list, got {type(value).__name__}")
    return tuple(_object_id(v, name) for v in value)


def _id_text(row: Any, name: str) -> str:
    value = _get(row, name)
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not value.strip()):
        raise _RowError(f"{name!r} must be a non-empty string or an integer, got {value!r}")
    return str(value)


def _scene(row: Any) -> str:
    value = _get(row, "scene_id")
    if not isinstance(value, str) or not SCENE_ID_PATTERN.fullmatch(value):
        raise _RowError(f"invalid scene id {value!r}: must match {SCENE_ID_PATTERN.pattern}")
    return value


def _strings(row: Any, name: str) -> tuple[str, ...]:
    value = _get(row, name)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _RowError(f"{name!r} must be a list of strings")
    return tuple(value)


def _parse_rows(
    path: Path, rows: list[Any], parse: Callable[[Any], R], key: Callable[[R], Any] | None = None
) -> tuple[list[tuple[int, R]], list[RowIssue]]:
    """Parse every row; duplicate ``key``s are issues (the first occurrence is kept)."""
    parsed: list[tuple[int, R]] = []
    issues: list[RowIssue] = []
    seen: dict[Any, int] = {}
    for index, row in enumerate(rows):
        try:
            record = parse(row)
        except _RowError as exc:
            issues.append(RowIssue(str(path), index, str(exc)))
            continue
        if key is not None:
            k = key(record)
            if k in seen:
                issues.append(RowIssue(str(path), index, f"duplicate id {k!r} (first at row {seen[k]})"))
                continue
            seen[k] = index
        parsed.append((index, record))
    return parsed, issues


def _finish(records: list[R], issues: list[RowIssue], on_error: OnError) -> Loaded[R]:
    if on_error not in ("raise", "collect"):
        raise ValueError(f"on_error must be 'raise' or 'collect', got {on_error!r}")
    if issues and on_error == "raise":
        raise AnnotationError(issues)
    return Loaded(records, issues)


def _keep(scene_id: str, scene_ids: Collection[str] | None) -> bool:
    return scene_ids is None or scene_id in scene_ids


# -- loaders ------------------------------------------------------------------------------------------------------


def load_scanrefer(
    path: str | Path, scene_ids: Collection[str] | None = None, on_error: OnError = "raise"
) -> Loaded[ScanReferRecord]:
    """``ScanRefer_filtered_<split>.json``; (scene, object_id, ann_id) must be unique."""
    path = Path(path)

    def parse(row: Any) -> ScanReferRecord:
        object_id = _object_id(_get(row, "object_id"), "object_id")
        return ScanReferRecord(
            _scene(row), object_id, _text(row, "object_name"), _id_text(row, "ann_id"), _text(row, "description")
        )

    parsed, issues = _parse_rows(
        path, _json_list(path, read_json_file(path)), parse, key=lambda r: (r.scene_id, r.object_id, r.ann_id)
    )
    return _finish([r for _, r in parsed if _keep(r.scene_id, scene_ids)], issues, on_error)


def load_scanqa(
    path: str | Path, scene_ids: Collection[str] | None = None, on_error: OnError = "raise", need_answers: bool = True
) -> Loaded[ScanQARecord]:
    """``ScanQA_v1.0_<split>.json``; ``question_id`` must be unique. ``object_ids`` (the code's field; the docs say
    ``object_id``) may be absent (test files). ``need_answers=False`` accepts the answer-less test files."""
    path = Path(path)

    def parse(row: Any) -> ScanQARecord:
        answers = _strings(row, "answers") if need_answers or "answers" in row else ()
        if need_answers and not any(a.strip() for a in answers):
            raise _RowError("'answers' is empty")
        has_objects = isinstance(row, dict) and "object_ids" in row
        object_ids = _object_ids(row, "object_ids") if has_objects else ()
        names = _strings(row, "object_names") if has_objects and "object_names" in row else ()
        return ScanQARecord(
            _scene(row), _id_text(row, "question_id"), _text(row, "question"), answers, object_ids, names
        )

    parsed, issues = _parse_rows(path, _json_list(path, read_json_file(path)), parse, key=lambda r: r.question_id)
    return _finish([r for _, r in parsed if _keep(r.scene_id, scene_ids)], issues, on_error)


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
        alternatives = _strings(row, "alternative_situation") if has_alternatives else ()
        for text in alternatives:
            if IMAGE_PLACEHOLDER in text:
                raise _RowError(f"'alternative_situation' contains the image placeholder {IMAGE_PLACEHOLDER!r}")
        return (
            _id_text(row, "question_id"),
            _scene(row),
            _text(row, "situation"),
            alternatives,
            _text(row, "question"),
        )

    def parse_annotation(row: Any) -> tuple[str, str, tuple[str, ...], str]:
        answers = _get(row, "answers")
        if not isinstance(answers, list) or not answers:
            raise _RowError("'answers' must be a non-empty list")
        texts = tuple(_text(a, "answer") for a in answers)
        question_type = _text(row, "question_type", allow_empty=True) if "question_type" in row else ""
        return _id_text(row, "question_id"), _scene(row), texts, question_type

    question_rows = _json_list(questions_path, read_json_file(questions_path), "questions")
    annotation_rows = _json_list(annotations_path, read_json_file(annotations_path), "annotations")
    questions, issues = _parse_rows(questions_path, question_rows, parse_question, key=lambda q: q[0])
    annotations, more = _parse_rows(annotations_path, annotation_rows, parse_annotation, key=lambda a: a[0])
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
        if _keep(scene_id, scene_ids):
            records.append(SQA3DRecord(scene_id, qid, situation, alternatives, question, answers, question_type))
    for index, (qid, *_) in annotations:
        if qid not in matched:
            issues.append(RowIssue(str(annotations_path), index, f"question_id {qid!r} has no question"))
    return _finish(records, issues, on_error)


def load_multi3drefer(
    path: str | Path, scene_ids: Collection[str] | None = None, on_error: OnError = "raise"
) -> Loaded[Multi3DReferRecord]:
    """``multi3drefer_<split>.json``; zero-target eval types have no ``object_ids`` and the others have some;
    (scene, ann_id) must be unique."""
    path = Path(path)

    def parse(row: Any) -> Multi3DReferRecord:
        eval_type = _text(row, "eval_type")
        if eval_type not in MULTI3DREFER_EVAL_TYPES:
            raise _RowError(f"'eval_type' {eval_type!r} is not one of {MULTI3DREFER_EVAL_TYPES}")
        object_ids = _object_ids(row, "object_ids")
        if eval_type.startswith("zt") != (len(object_ids) == 0):
            raise _RowError(f"eval_type {eval_type!r} does not fit {len(object_ids)} target(s)")
        if len(set(object_ids)) != len(object_ids):
            raise _RowError(f"'object_ids' repeats an id: {list(object_ids)}")
        return Multi3DReferRecord(
            _scene(row),
            _id_text(row, "ann_id"),
            object_ids,
            _text(row, "object_name"),
            _text(row, "description"),
            eval_type,
        )

    parsed, issues = _parse_rows(
        path, _json_list(path, read_json_file(path)), parse, key=lambda r: (r.scene_id, r.ann_id)
    )
    return _finish([r for _, r in parsed if _keep(r.scene_id, scene_ids)], issues, on_error)


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


def read_split_scenes(path: str | Path) -> list[str]:
    """Scene ids of ``scannetv2_<split>.txt`` (one per line, blank lines ignored); an invalid id is an error."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise SceneInputError(None, path, f"cannot read split file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SceneInputError(None, path, f"not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    scenes = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        scene_id = line.strip()
        if not scene_id:
            continue
        if not SCENE_ID_PATTERN.fullmatch(scene_id):
            raise SceneInputError(None, path, f"line {line_number}: invalid scene id {scene_id!r}")
        scenes.append(scene_id)
    return scenes


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
