"""Prediction files → ``{task: {prediction id: answer}}``.

Our JSONL (one ``{scene_id, sample_id, task, prompt, answer, parsed_ids}`` per line, as ``ops.model.inference``
writes; keyed by ``sample_id``), or GPT4Scene's outputs: a JSON list of ``{scene_id, qid, gt_id, pred_id, prompt,
pred, ...}`` in ``qwenvl_<task>/predictions_chunk_<i>.json`` (keyed by ``qid``), given as one file (task from its
folder name or ``task=``) or as the folder holding the ``qwenvl_<task>/`` folders (all chunks of every task).

An answer must be a string: null, NaN, a number or a list is an error naming the file and the line (our JSONL) or
row (GPT4Scene's list), never coerced to text and scored. JSONL is read a line at a time and a line longer than
``ops.core.jsonlines.MAX_LINE_BYTES`` is refused, never held whole; JSON nested too deeply is an error naming the
file.
"""

from __future__ import annotations

from pathlib import Path

from ops.core.errors import SceneInputError
from ops.core.jsonlines import id_field, iter_json_lines, string_field
from ops.dataset.annotations import read_json_file
from ops.metrics.official import OFFICIAL_TASKS
from ops.metrics.suite import BENCHMARKS


def _add(out: dict[str, dict[str, str]], task: str, pid: str, answer: str, where: Path) -> None:
    answers = out.setdefault(task, {})
    if pid in answers:
        raise SceneInputError(None, where, f"{task} prediction {pid} appears twice")
    answers[pid] = answer


def read_predictions(path: str | Path, task: str | None = None) -> dict[str, dict[str, str]]:
    """``{task: {prediction id: answer}}`` from our JSONL or GPT4Scene's prediction JSON (file or folder)."""
    path = Path(path)
    out: dict[str, dict[str, str]] = {}
    if path.is_dir():
        files = sorted(path.glob("qwenvl_*/predictions_chunk_*.json"))
        if not files:
            raise SceneInputError(None, path, "no qwenvl_<task>/predictions_chunk_<i>.json files")
        for file in files:
            for pid, answer in _official_rows(file, _official_task(file, None)):
                _add(out, _official_task(file, None), pid, answer, file)
        return out
    if path.suffix == ".jsonl":
        for number, row in iter_json_lines(path):
            where = f"line {number}"
            task_name, pid = string_field(row, "task", path, where), id_field(row, "sample_id", path, where)
            _add(out, task_name, pid, string_field(row, "answer", path, where), path)
        return out
    name = _official_task(path, task)
    for pid, answer in _official_rows(path, name):
        _add(out, name, pid, answer, path)
    return out


def _official_task(file: Path, task: str | None) -> str:
    if task is not None:
        if task not in BENCHMARKS:
            raise ValueError(f"task must be one of {BENCHMARKS}, got {task!r}")
        return task
    folder = file.parent.name
    official = folder.removeprefix("qwenvl_")
    if not folder.startswith("qwenvl_") or official not in OFFICIAL_TASKS:
        raise SceneInputError(None, file, "cannot tell the task: name it (--task) or keep the qwenvl_<task>/ folder")
    return OFFICIAL_TASKS[official]


def _official_rows(file: Path, task: str) -> list[tuple[str, str]]:
    rows = read_json_file(file)
    if not isinstance(rows, list):
        raise SceneInputError(None, file, "expected a JSON list of {qid, pred, ...} rows")
    return [
        (id_field(row, "qid", file, f"{task} row {index}"), string_field(row, "pred", file, f"{task} row {index}"))
        for index, row in enumerate(rows)
    ]
