"""Batched, resumable, chunked inference over an eval set → predictions JSONL.

As GPT4Scene's ``evaluate/infer.py``: greedy generation (its checkpoint's generation config is effectively greedy),
left padding in batches, several processes or GPUs by splitting the rows in chunks (chunk i of C gets rows
``[i*floor(L/C), (i+1)*floor(L/C))``, the last one the rest), and resuming by id. Rows are taken in ``sample_id``
order, so a chunk holds the same rows whatever the shard order.

A predictions file is append-only JSONL, one compact sorted-key object per line::

    {"answer": "...", "parsed_ids": [3, 17], "prompt": "...", "sample_id": "...", "scene_id": "...", "task": "..."}

``prompt`` is the user text without its ``<image>`` placeholders; ``parsed_ids`` every ``<OBJ###>`` of the answer in
order (the scorer drops IDs beyond a scene's proposals). Each batch is appended and fsynced as a whole; a rerun
skips ids already in the file, and a torn last line (a crash mid-write) is cut off first. ``merge_predictions``
joins chunk files into one file sorted by ``sample_id`` (written atomically), which is byte-identical for the same
model, eval set and settings however the work was chunked.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.core.atomic import write_text
from ops.core.errors import SceneInputError
from ops.core.fingerprint import file_sha256, sha256_hex
from ops.core.jsonlines import iter_json_lines, string_field
from ops.core.settings import setting
from ops.dataset.annotations import IMAGE_PLACEHOLDER, find_special_tokens
from ops.metrics.grounding import OBJECT_ID_PATTERN

Log = Callable[[str], None]


def _no_log(_: str) -> None:
    pass


@dataclass(frozen=True)
class EvalRow:
    """One eval-set row as the model sees it: user text with ``<image>`` placeholders and its images (bytes, or
    paths relative to the storage root)."""

    sample_id: str
    scene_id: str
    task: str
    user_text: str
    images: tuple[bytes | str, ...] = field(repr=False)

    @property
    def prompt(self) -> str:
        return self.user_text.replace(IMAGE_PLACEHOLDER, "")


@dataclass(frozen=True)
class InferenceSettings:
    """Batch size, generation length, image cap (long side, px), the chunk this process runs, and ``limit`` (only
    the first rows in ``sample_id`` order, before chunking: a quick partial evaluation)."""

    batch_size: int = setting(8, "rows generated together", ge=1)
    max_new_tokens: int = setting(128, "answer length cap, tokens", ge=1)
    image_max_side: int = setting(512, "long side the images are capped at, px", ge=1)
    num_chunks: int = setting(1, "split the rows over this many processes (one per GPU)", ge=1)
    chunk_index: int = setting(0, "the chunk this process answers", ge=0)
    limit: int | None = setting(None, "only the first N rows (sample_id order)")

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_new_tokens < 1 or self.image_max_side < 1:
            raise ValueError("batch_size, max_new_tokens and image_max_side must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 (or None for every row), got {self.limit}")
        if not 0 <= self.chunk_index < self.num_chunks:
            raise ValueError(f"chunk_index must be in [0, {self.num_chunks}), got {self.chunk_index}")


@dataclass(frozen=True)
class InferenceStats:
    """Rows of the chunk, rows already done before this run, rows answered now, and the generation time."""

    rows: int
    skipped: int
    generated: int
    seconds: float

    @property
    def samples_per_second(self) -> float:
        return self.generated / self.seconds if self.seconds > 0 else 0.0


def read_eval_rows(eval_dir: str | Path) -> list[EvalRow]:
    """The rows of an eval shard set in ``sample_id`` order; a user text holding one of the model's special tokens is
    refused (``SceneInputError`` naming the eval set and the sample), before anything is generated."""
    from ops.dataset.shards import iter_rows

    rows = []
    for row in iter_rows(eval_dir, columns=("sample_id", "scene_id", "task", "messages", "images")):
        user = [m["content"] for m in row["messages"] if m["role"] == "user"]
        if len(user) != 1:
            raise SceneInputError(row["scene_id"], eval_dir, f"row {row['sample_id']}: expected one user turn")
        found = find_special_tokens(user[0])
        if found:
            reason = f"row {row['sample_id']}: the user text holds the model's special token {found[0]}"
            raise SceneInputError(row["scene_id"], eval_dir, reason)
        rows.append(EvalRow(row["sample_id"], row["scene_id"], row["task"], user[0], tuple(row["images"])))
    return sorted(rows, key=lambda r: r.sample_id)


def chunk_rows(rows: Sequence[Any], num_chunks: int, chunk_index: int) -> list[Any]:
    """Chunk ``chunk_index`` of ``num_chunks``, split as GPT4Scene's ``infer.py`` does (last chunk takes the rest)."""
    if not 0 <= chunk_index < num_chunks:
        raise ValueError(f"chunk_index must be in [0, {num_chunks}), got {chunk_index}")
    size = len(rows) // num_chunks
    end = len(rows) if chunk_index == num_chunks - 1 else (chunk_index + 1) * size
    return list(rows[chunk_index * size : end])


def chunk_path(out_dir: str | Path, num_chunks: int, chunk_index: int) -> Path:
    """``<out_dir>/predictions_chunk_<i>_of_<C>.jsonl``."""
    return Path(out_dir) / f"predictions_chunk_{chunk_index}_of_{num_chunks}.jsonl"


def prediction_row(row: EvalRow, answer: str) -> dict[str, Any]:
    """The JSONL row of one answer."""
    return {
        "scene_id": row.scene_id,
        "sample_id": row.sample_id,
        "task": row.task,
        "prompt": row.prompt,
        "answer": answer,
        "parsed_ids": [int(m.group(1)) for m in OBJECT_ID_PATTERN.finditer(answer)],
    }


def _line(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"


def read_prediction_rows(path: str | Path) -> list[dict[str, Any]]:
    """The complete rows of a predictions file (a torn last line is ignored), read a bounded line at a time
    (``ops.core.jsonlines``); a row without a string ``sample_id`` and ``answer`` is an error naming its line."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for number, row in iter_json_lines(path, complete_only=True):
        for name in ("sample_id", "answer"):
            string_field(row, name, path, f"line {number}")
        rows.append(row)
    return rows


def _cut_torn_line(path: Path, block: int = 1 << 16) -> None:
    """Truncate ``path`` after its last newline (what a crash mid-append leaves is dropped), reading only its tail."""
    if not path.is_file():
        return
    with open(path, "r+b") as handle:
        end = handle.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            start = max(0, position - block)
            handle.seek(start)
            newline = handle.read(position - start).rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            position = start
        else:
            keep = 0
        if keep != end:
            handle.truncate(keep)


def predict(
    rows: Sequence[EvalRow],
    answer_batch: Callable[[Sequence[EvalRow]], list[str]],
    out_path: str | Path,
    batch_size: int,
    log: Log = _no_log,
) -> InferenceStats:
    """Answer every row not yet in ``out_path`` in batches, appending each batch (fsynced) to it."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _cut_torn_line(out_path)
    done = {row["sample_id"] for row in read_prediction_rows(out_path)}
    pending = [row for row in rows if row.sample_id not in done]
    skipped = len(rows) - len(pending)
    if skipped:
        log(f"{out_path.name}: {skipped} of {len(rows)} rows already answered, {len(pending)} to go")
    started = time.perf_counter()
    with open(out_path, "a", encoding="utf-8") as handle:
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            answers = answer_batch(batch)
            if len(answers) != len(batch):
                raise RuntimeError(f"{len(answers)} answers for a batch of {len(batch)}")
            handle.write("".join(_line(prediction_row(row, answer)) for row, answer in zip(batch, answers)))
            handle.flush()
            os.fsync(handle.fileno())
            if (start // batch_size) % 10 == 0:
                log(f"{out_path.name}: {start + len(batch)} of {len(pending)} rows answered")
    return InferenceStats(len(rows), skipped, len(pending), time.perf_counter() - started)


def vlm_answerer(
    vlm: Any, root: str | Path | None, max_new_tokens: int, image_max_side: int
) -> Callable[[Sequence[EvalRow]], list[str]]:
    """A batch answerer over a loaded ``ops.model.vlm.VLM``: images loaded (bytes, or paths under ``root``) and capped,
    then one left-padded greedy ``generate`` call per batch."""
    from ops.model.vlm import generate, load_image

    def image(row: EvalRow, source: bytes | str) -> Any:
        if isinstance(source, bytes):
            return load_image(source, image_max_side)
        if root is None:
            raise SceneInputError(row.scene_id, source, "the eval set stores image paths: give the storage root")
        try:
            return load_image(Path(root) / source, image_max_side)
        except OSError as exc:
            raise SceneInputError(row.scene_id, Path(root) / source, f"cannot read image: {exc}") from exc

    def answer(batch: Sequence[EvalRow]) -> list[str]:
        conversations = [(row.user_text, [image(row, s) for s in row.images]) for row in batch]
        return generate(vlm, conversations, max_new_tokens=max_new_tokens)

    return answer


def run_inference(
    vlm: Any,
    eval_dir: str | Path,
    out_path: str | Path,
    settings: InferenceSettings = InferenceSettings(),
    root: str | Path | None = None,
    log: Log = _no_log,
) -> InferenceStats:
    """Answer this process's chunk of the eval set at ``eval_dir`` into ``out_path`` (resuming it)."""
    rows = read_eval_rows(eval_dir)[: settings.limit]
    rows = chunk_rows(rows, settings.num_chunks, settings.chunk_index)
    answerer = vlm_answerer(vlm, root, settings.max_new_tokens, settings.image_max_side)
    return predict(rows, answerer, out_path, settings.batch_size, log)


def merge_predictions(
    paths: Iterable[str | Path], out_path: str | Path, expected_ids: Iterable[str] | None = None
) -> int:
    """Join prediction files into ``out_path`` sorted by ``sample_id`` (atomically); return the row count. A
    sample answered twice, or (with ``expected_ids``) a missing or unexpected one, is an error."""
    rows: dict[str, dict[str, Any]] = {}
    for path in paths:
        for row in read_prediction_rows(path):
            if row["sample_id"] in rows:
                raise SceneInputError(row.get("scene_id"), path, f"sample {row['sample_id']} answered twice")
            rows[row["sample_id"]] = row
    if expected_ids is not None:
        expected = set(expected_ids)
        missing, extra = sorted(expected - set(rows)), sorted(set(rows) - expected)
        if missing or extra:
            raise ValueError(
                f"predictions do not cover the eval set: {len(missing)} missing (e.g. {missing[:3]}), "
                f"{len(extra)} unexpected (e.g. {extra[:3]})"
            )
    write_text(out_path, "".join(_line(rows[sample_id]) for sample_id in sorted(rows)))
    return len(rows)


# -- models and processes -----------------------------------------------------------------------------------------


def is_adapter_dir(path: str | Path) -> bool:
    """A PEFT adapter folder (``adapter_config.json``), as opposed to full weights (``config.json``)."""
    return (Path(path) / "adapter_config.json").is_file()


def checkpoint_model_dirs(base_dir: str | Path, checkpoint_dir: str | Path) -> tuple[Path, Path | None]:
    """(model folder, adapter folder or None) to load a checkpoint: an adapter goes on top of the base model; full
    weights load on their own."""
    checkpoint_dir = Path(checkpoint_dir)
    if is_adapter_dir(checkpoint_dir):
        return Path(base_dir), checkpoint_dir
    if (checkpoint_dir / "config.json").is_file():
        return checkpoint_dir, None
    raise FileNotFoundError(f"{checkpoint_dir}: neither a PEFT adapter (adapter_config.json) nor a model (config.json)")


def model_fingerprint(*dirs: str | Path | None) -> str:
    """sha256 over the name, size and sha256 of every file of the given model/adapter folders: what decides a
    model's answers, so predictions made by another model are never resumed."""

    entries = []
    for folder in (Path(d) for d in dirs if d is not None):
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            entries.append(f"{path.relative_to(folder).as_posix()}\t{path.stat().st_size}\t{file_sha256(path)}")
    return sha256_hex("\n".join(entries).encode("utf-8"))


def chunk_command(
    model_dir: str | Path,
    adapter_dir: str | Path | None,
    eval_dir: str | Path,
    out_dir: str | Path,
    settings: InferenceSettings,
    root: str | Path | None = None,
) -> list[str]:
    """The ``gpt4scene infer`` command line of ``settings``' chunk (run by ``run_chunk_processes``)."""
    import sys

    command = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "infer",
        "--model",
        str(model_dir),
        "--eval-set",
        str(eval_dir),
        "--out",
        str(out_dir),
        "--batch-size",
        str(settings.batch_size),
        "--max-new-tokens",
        str(settings.max_new_tokens),
        "--image-max-side",
        str(settings.image_max_side),
        "--num-chunks",
        str(settings.num_chunks),
        "--chunk-index",
        str(settings.chunk_index),
    ]
    if adapter_dir is not None:
        command += ["--adapter", str(adapter_dir)]
    if root is not None:
        command += ["--root", str(root)]
    if settings.limit is not None:
        command += ["--limit", str(settings.limit)]
    return command


def run_chunk_processes(commands: Sequence[list[str]], log_dir: str | Path, gpus: int = 0, log: Log = _no_log) -> None:
    """Run one process per chunk at once (chunk i on GPU ``i % gpus`` when there are GPUs) and wait for all; a
    failed chunk raises with the tail of its log (``<log_dir>/chunk_<i>.log``)."""
    import subprocess

    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    running = []
    for index, command in enumerate(commands):
        env = dict(os.environ)
        if gpus > 0:
            env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
        log_path = log_dir / f"chunk_{index}.log"
        with open(log_path, "wb") as out:
            running.append((index, log_path, subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)))
        log(f"chunk {index}: started ({'GPU ' + env['CUDA_VISIBLE_DEVICES'] if gpus else 'CPU'})")
    failed = []
    for index, log_path, process in running:
        if process.wait() != 0:
            failed.append(f"chunk {index} exited {process.returncode}: {log_path.read_text(errors='replace')[-800:]}")
    if failed:
        raise RuntimeError("inference chunks failed:\n" + "\n".join(failed))
