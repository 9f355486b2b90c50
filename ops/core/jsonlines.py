"""JSON Lines files read one bounded line at a time, and the typed fields of their rows.

A line longer than the limit is refused without being held whole; every error (unreadable file, not UTF-8, not JSON,
nested too deeply, a field missing or of the wrong type) names the file and the line or row."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ops.core.errors import SceneInputError

MAX_LINE_BYTES = 1 << 20  # 1 MiB: a prediction row is a few hundred bytes


def iter_json_lines(
    path: str | Path, max_line_bytes: int = MAX_LINE_BYTES, complete_only: bool = False
) -> Iterator[tuple[int, Any]]:
    """(line number from 1, parsed value) of every line of ``path``, read ``max_line_bytes`` at most at a time.

    With ``complete_only`` a last line without its newline (a torn append) is left out instead of parsed."""
    path = Path(path)
    if not path.is_file():
        raise SceneInputError(None, path, "not a regular file")
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise SceneInputError(None, path, f"cannot read: {exc.strerror or exc}") from exc
    with handle:
        number = 0
        while line := _read_line(handle, path, max_line_bytes + 1):
            number += 1
            if not line.endswith(b"\n"):
                if len(line) > max_line_bytes:
                    raise SceneInputError(None, path, f"line {number}: longer than {max_line_bytes} bytes")
                if complete_only:
                    return
            yield number, parse_json_line(line, path, number)


def _read_line(handle: BinaryIO, path: Path, limit: int) -> bytes:
    try:
        return handle.readline(limit)
    except OSError as exc:
        raise SceneInputError(None, path, f"cannot read: {exc.strerror or exc}") from exc


def parse_json_line(line: bytes, path: Path, number: int) -> Any:
    """One line's JSON value; bad UTF-8, bad JSON or too deep nesting raise ``SceneInputError`` naming the line."""
    try:
        return json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SceneInputError(None, path, f"line {number}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise SceneInputError(None, path, f"line {number}: not JSON ({exc.msg} at column {exc.colno})") from exc
    except RecursionError as exc:
        raise SceneInputError(None, path, f"line {number}: JSON nested too deeply") from exc


def _field(row: Any, name: str, path: Path, where: str) -> Any:
    if not isinstance(row, dict):
        raise SceneInputError(None, path, f"{where}: expected a JSON object, got {describe_json(row)}")
    if name not in row:
        raise SceneInputError(None, path, f"{where}: no {name!r}")
    return row[name]


def string_field(row: Any, name: str, path: Path, where: str) -> str:
    """``row[name]``, which must be a string: null, NaN, a number or a list raises ``SceneInputError`` naming
    ``where`` (``line 3``, ``row 3``) in ``path``, never becomes the text ``"None"``."""
    value = _field(row, name, path, where)
    if not isinstance(value, str):
        raise SceneInputError(None, path, f"{where}: {name!r} must be a string, got {describe_json(value)}")
    return value


def id_field(row: Any, name: str, path: Path, where: str) -> str:
    """An id ``row[name]`` given as a string or an integer, as a string (anything else as in ``string_field``)."""
    value = _field(row, name, path, where)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SceneInputError(
            None, path, f"{where}: {name!r} must be a string or an integer, got {describe_json(value)}"
        )
    return str(value)


def describe_json(value: Any) -> str:
    """A parsed JSON value in a few words for an error: ``null``, ``NaN``, ``a list``, ``the float 1.5``."""
    if value is None:
        return "null"
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, (dict, list)):
        return "a JSON object" if isinstance(value, dict) else "a list"
    return f"the {type(value).__name__} {json.dumps(value)[:40]}"
