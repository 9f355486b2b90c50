"""Reading benchmark annotation files: the file names, row-level error reporting and the field parsers every
benchmark reader (``ops.dataset.benchmarks``) shares.

A file that cannot be read, is not UTF-8 or is not JSON of the published shape raises ``SceneInputError`` naming the
file. A malformed row (missing or mistyped field, invalid scene id, duplicate id, text holding the image placeholder
or one of the model's special tokens, ...) is never dropped silently: with ``on_error="raise"`` (default) every bad
row of the file is listed in one ``AnnotationError``; with ``on_error="collect"`` the good rows are returned and the
bad ones come back as ``RowIssue``s. ``row`` is the 0-based index in the file's list (SQA3D: in ``questions`` or
``annotations``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from ops.core.errors import SceneInputError
from ops.core.textfile import read_utf8_text
from ops.scannet.scene_id import SCENE_ID_PATTERN

OnError = Literal["raise", "collect"]
IMAGE_PLACEHOLDER = "<image>"  # LLaMA-Factory's image token; annotation text must not contain it
# Qwen2-VL's special tokens, as its tokenizer lists them (``all_special_tokens``; docs/REFERENCE.md §4.1). Text that
# holds one would change the chat's structure once tokenised (end a turn, open a forged one, add image slots), so it
# is refused wherever text enters a chat: annotation rows, shard rows, training and inference rows, served requests.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
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


R = TypeVar("R")


@dataclass
class Loaded(Generic[R]):
    """Records of one loader and, with ``on_error="collect"``, the malformed rows left out."""

    records: list[R]
    issues: list[RowIssue] = field(default_factory=list)


class RowError(ValueError):
    """Why one row is malformed (becomes a ``RowIssue``)."""


# -- files and fields ---------------------------------------------------------------------------------------------


def read_json_file(path: str | Path) -> Any:
    """Parse a UTF-8 JSON file; any failure raises ``SceneInputError`` naming the file."""
    path = Path(path)
    text = read_utf8_text(path, None, "annotation file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SceneInputError(None, path, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise SceneInputError(None, path, "malformed JSON: nested too deeply") from exc


def json_list(path: Path, data: Any, key: str | None = None) -> list[Any]:
    """``data`` (or ``data[key]``) when it is a list; otherwise ``SceneInputError`` naming the file."""
    if key is not None:
        if not isinstance(data, dict) or key not in data:
            raise SceneInputError(None, path, f"expected a JSON object with a {key!r} list")
        data = data[key]
    if not isinstance(data, list):
        where = f" under {key!r}" if key else ""
        raise SceneInputError(None, path, f"expected a JSON list{where}, got {type(data).__name__}")
    return data


def field_value(row: Any, name: str) -> Any:
    """``row[name]``; a row that is not an object, or lacks the field, is a ``RowError``."""
    if not isinstance(row, dict):
        raise RowError(f"expected an object, got {type(row).__name__}")
    if name not in row:
        raise RowError(f"missing field {name!r}")
    return row[name]


def find_special_tokens(text: str, tokens: Iterable[str] = SPECIAL_TOKENS) -> list[str]:
    """The special ``tokens`` (default Qwen2-VL's) that occur in ``text``, in the order they first appear there."""
    return sorted((token for token in tokens if token in text), key=text.index)


def chat_text_problem(text: str) -> str | None:
    """Why ``text`` cannot go into a chat turn as written: it holds the image placeholder or a special token (None:
    it can)."""
    if IMAGE_PLACEHOLDER in text:
        return f"contains the image placeholder {IMAGE_PLACEHOLDER!r}"
    found = find_special_tokens(text)
    if found:
        return f"contains the model's special token {found[0]!r}"
    return None


def text_field(row: Any, name: str, allow_empty: bool = False) -> str:
    """A string field (non-empty unless ``allow_empty``) without the image placeholder or a special token."""
    value = field_value(row, name)
    if not isinstance(value, str):
        raise RowError(f"{name!r} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise RowError(f"{name!r} is empty")
    problem = chat_text_problem(value)
    if problem:
        raise RowError(f"{name!r} {problem}")
    return value


def object_id_value(value: Any, name: str) -> int:
    """An objectId: an int or a decimal string (ScanRefer publishes strings), >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise RowError(f"{name!r} must be an integer, got {value!r}")
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise RowError(f"{name!r} must be an integer, got {value!r}")
        value = int(value)
    if value < 0:
        raise RowError(f"{name!r} must be >= 0, got {value}")
    return value


def object_ids_field(row: Any, name: str) -> tuple[int, ...]:
    """A list of objectIds."""
    value = field_value(row, name)
    if not isinstance(value, list):
        raise RowError(f"{name!r} must be a list, got {type(value).__name__}")
    return tuple(object_id_value(v, name) for v in value)


def id_text_field(row: Any, name: str) -> str:
    """An id given as a non-empty string or an integer, as a string."""
    value = field_value(row, name)
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not value.strip()):
        raise RowError(f"{name!r} must be a non-empty string or an integer, got {value!r}")
    return str(value)


def scene_field(row: Any) -> str:
    """The row's ``scene_id``, which must be a valid ScanNet scene id."""
    value = field_value(row, "scene_id")
    if not isinstance(value, str) or not SCENE_ID_PATTERN.fullmatch(value):
        raise RowError(f"invalid scene id {value!r}: must match {SCENE_ID_PATTERN.pattern}")
    return value


def strings_field(row: Any, name: str) -> tuple[str, ...]:
    """A list of strings without the image placeholder or a special token, as a tuple."""
    value = field_value(row, name)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RowError(f"{name!r} must be a list of strings")
    for text in value:
        problem = chat_text_problem(text)
        if problem:
            raise RowError(f"{name!r} {problem}")
    return tuple(value)


def parse_rows(
    path: Path, rows: list[Any], parse: Callable[[Any], R], key: Callable[[R], Any] | None = None
) -> tuple[list[tuple[int, R]], list[RowIssue]]:
    """Parse every row; duplicate ``key``s are issues (the first occurrence is kept)."""
    parsed: list[tuple[int, R]] = []
    issues: list[RowIssue] = []
    seen: dict[Any, int] = {}
    for index, row in enumerate(rows):
        try:
            record = parse(row)
        except RowError as exc:
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


def finish_loading(records: list[R], issues: list[RowIssue], on_error: OnError) -> Loaded[R]:
    """The records and issues of one reader, or ``AnnotationError`` listing the issues (``on_error="raise"``)."""
    if on_error not in ("raise", "collect"):
        raise ValueError(f"on_error must be 'raise' or 'collect', got {on_error!r}")
    if issues and on_error == "raise":
        raise AnnotationError(issues)
    return Loaded(records, issues)


def keep_scene(scene_id: str, scene_ids: Collection[str] | None) -> bool:
    """Whether a row of ``scene_id`` is wanted (``scene_ids`` None: every scene)."""
    return scene_ids is None or scene_id in scene_ids


def load_records(
    path: Path,
    parse: Callable[[Any], R],
    key: Callable[[R], Any],
    scene_ids: Collection[str] | None,
    on_error: OnError,
) -> Loaded[R]:
    """The records of a file holding one JSON list of rows, each parsed by ``parse``; ``key`` must be unique."""
    parsed, issues = parse_rows(path, json_list(path, read_json_file(path)), parse, key)
    return finish_loading([r for _, r in parsed if keep_scene(r.scene_id, scene_ids)], issues, on_error)


# -- split files --------------------------------------------------------------------------------------------------


def read_split_scenes(path: str | Path) -> list[str]:
    """Scene ids of ``scannetv2_<split>.txt`` (one per line, blank lines ignored); an invalid id is an error."""
    path = Path(path)
    text = read_utf8_text(path, None, "split file")
    scenes = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        scene_id = line.strip()
        if not scene_id:
            continue
        if not SCENE_ID_PATTERN.fullmatch(scene_id):
            raise SceneInputError(None, path, f"line {line_number}: invalid scene id {scene_id!r}")
        scenes.append(scene_id)
    return scenes
