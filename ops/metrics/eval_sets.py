"""Eval sets and predictions → the five benchmarks' scores, in our format or in GPT4Scene's released one.

Two kinds of eval set load into one ``EvalSuite`` (the ``score_*`` items of every benchmark, plus the map from a
prediction's id to its item):

- ours: an eval shard set (``<root>/dataset/eval/val_<variant>/``, ``ops.dataset.shards`` layout with the ``eval``
column and
  ``scan2cap_corpus.json``); proposal boxes are read from the ``instances/boxes.npy`` files the rows name (relative to
  the storage root) and must still have the sha256 recorded at build time. Predictions are keyed by ``sample_id``.
- official: GPT4Scene's / Chat-Scene's validation annotation folder (``evaluate/annotation/``): the task JSONs
  ``scanqa_val.json``, ``sqa3d_val.json``, ``scanrefer_mask3d_val.json``, ``multi3dref_mask3d_val.json``,
  ``scan2cap_mask3d_val.json`` (rows ``scene_id, obj_id, prompt, ref_captions, qid`` + ``sqa_type`` / ``eval_type`` /
  ``pred_id, iou``), the box files ``scannet_mask3d_val_attributes.pt`` (proposals) and ``scannet_val_attributes.pt``
  (GT), each ``{scene_id: {"locs": [N,6] tensor, ...}}``, ``scan2cap_val_corpus.json`` and, optionally,
  ``scanrefer_unique_multiple_lookup.json`` (``{scene: {object_id: 0 unique | 1 multiple}}``). Predictions are
  keyed by ``qid``.

Prediction files: our JSONL (one ``{scene_id, sample_id, task, prompt, answer, parsed_ids}`` per line, as
``ops.model.inference`` writes), or GPT4Scene's outputs: a JSON list of ``{scene_id, qid, gt_id, pred_id, prompt, pred,
...}`` in ``qwenvl_<task>/predictions_chunk_<i>.json``, given as one file (task from its folder name or ``task=``) or
as the folder holding the ``qwenvl_<task>/`` folders (all chunks of every task).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ops.core.errors import SceneInputError
from ops.core.fingerprint import sha256_hex
from ops.core.layout import SCAN2CAP_CORPUS, StorageLayout
from ops.dataset.annotations import read_json_file
from ops.metrics.benchmarks import (
    CaptionItem,
    Multi3DReferItem,
    QAItem,
    ScanReferItem,
    score_multi3drefer,
    score_scan2cap,
    score_scanqa,
    score_scanrefer,
    score_sqa3d,
)
from ops.metrics.captions import CaptionScorer
from ops.metrics.grounding import Fallback

BENCHMARKS: tuple[str, ...] = ("scanqa", "sqa3d", "scanrefer", "multi3drefer", "scan2cap")
# GPT4Scene's task names (folder ``qwenvl_<task>``, annotation files) → ours.
OFFICIAL_TASKS = {
    "scanqa": "scanqa",
    "sqa3d": "sqa3d",
    "scanrefer": "scanrefer",
    "multi3dref": "multi3drefer",
    "scan2cap": "scan2cap",
}
OFFICIAL_FILES = {
    "scanqa": "scanqa_val.json",
    "sqa3d": "sqa3d_val.json",
    "scanrefer": "scanrefer_mask3d_val.json",
    "multi3drefer": "multi3dref_mask3d_val.json",
    "scan2cap": "scan2cap_mask3d_val.json",
}
OFFICIAL_PROPOSALS = "scannet_mask3d_val_attributes.pt"
OFFICIAL_GT = "scannet_val_attributes.pt"
OFFICIAL_CORPUS = "scan2cap_val_corpus.json"
OFFICIAL_UNIQUE = "scanrefer_unique_multiple_lookup.json"


@dataclass
class EvalSuite:
    """The eval items of every benchmark present, and per benchmark the map prediction id → item id.

    ``kind`` is ``"ours"`` (prediction ids are sample ids) or ``"official"`` (qids)."""

    kind: str
    source: Path
    items: dict[str, list[Any]] = field(default_factory=dict)
    ids: dict[str, dict[str, str]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Items per benchmark (Scan2Cap: every object of the corpus)."""
        return {task: len(items) for task, items in self.items.items()}

    def resolve(self, predictions: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
        """``{task: {prediction id: answer}}`` → ``{task: {item id: answer}}``; an unknown task or id is an error."""
        out: dict[str, dict[str, str]] = {}
        for task, answers in predictions.items():
            if task not in self.ids:
                raise ValueError(f"{len(answers)} {task} predictions, but {self.source} has no {task} items")
            known = self.ids[task]
            unknown = sorted(set(answers) - set(known))
            if unknown:
                raise ValueError(
                    f"{task}: {len(unknown)} predictions match no item of {self.source}, e.g. {unknown[:5]}"
                )
            out[task] = {known[pid]: answer for pid, answer in answers.items()}
        return out


# -- our eval sets ------------------------------------------------------------------------------------------------


class _BoxFiles:
    """Proposal boxes read once per file, checked against the sha256 the eval set recorded."""

    def __init__(self, root: Path):
        self.root = root
        self.cache: dict[str, np.ndarray] = {}

    def get(self, scene_id: str, rel: str, sha256: str | None) -> np.ndarray:
        if rel not in self.cache:
            path = self.root / rel
            try:
                data = path.read_bytes()
                boxes = np.load(io.BytesIO(data), allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise SceneInputError(scene_id, path, f"cannot read proposal boxes: {exc}") from exc
            if sha256 is not None and sha256_hex(data) != sha256:
                raise SceneInputError(
                    scene_id, path, "proposal boxes changed since the eval set was built; rebuild the eval set"
                )
            self.cache[rel] = np.asarray(boxes, np.float64).reshape(-1, 6)
        return self.cache[rel]


def load_eval_set(eval_dir: str | Path, root: str | Path) -> EvalSuite:
    """The ``EvalSuite`` of one of our eval shard sets; ``root`` is the storage root its box paths are relative to."""
    from ops.dataset.shards import iter_rows

    eval_dir, root = Path(eval_dir), Path(root)
    corpus_path = eval_dir / SCAN2CAP_CORPUS
    corpus = read_json_file(corpus_path)
    boxes = _BoxFiles(root)
    suite = EvalSuite("ours", eval_dir)
    captioned: dict[str, tuple[str, dict[str, Any], np.ndarray]] = {}
    rows = sorted(iter_rows(eval_dir, columns=("sample_id", "scene_id", "task", "eval")), key=lambda r: r["sample_id"])
    for row in rows:
        task, sample_id, scene_id, extra = row["task"], row["sample_id"], row["scene_id"], row["eval"]
        if extra is None:
            raise SceneInputError(scene_id, eval_dir, f"row {sample_id} has no eval fields: not an eval set")

        def proposals(scene_id: str = scene_id, extra: dict[str, Any] = extra) -> np.ndarray:
            return boxes.get(scene_id, extra["proposal_boxes"], extra.get("proposal_boxes_sha256"))

        if task == "scanqa":
            item: Any = QAItem(sample_id, tuple(extra["refs"]))
        elif task == "sqa3d":
            item = QAItem(sample_id, tuple(extra["refs"]), question_type=int(extra["sqa_type"]))
        elif task == "scanrefer":
            item = ScanReferItem(sample_id, extra["gt_box"], proposals(), bool(extra["unique"]))
        elif task == "multi3drefer":
            gt = np.asarray(extra["gt_boxes"], np.float64).reshape(-1, 6)
            item = Multi3DReferItem(sample_id, gt, proposals(), extra["eval_type"])
        elif task == "scan2cap":
            if extra["key"] in captioned:
                raise SceneInputError(scene_id, eval_dir, f"two Scan2Cap rows for object {extra['key']}")
            captioned[extra["key"]] = (sample_id, extra, proposals())
            continue
        else:
            raise SceneInputError(scene_id, eval_dir, f"row {sample_id}: unknown task {task!r}")
        suite.items.setdefault(task, []).append(item)
        suite.ids.setdefault(task, {})[sample_id] = sample_id
    if captioned or corpus:
        missing = sorted(set(captioned) - set(corpus))
        if missing:
            raise SceneInputError(None, corpus_path, f"Scan2Cap objects missing from the corpus: {missing[:5]}")
        items = []
        for key in sorted(corpus):
            if key in captioned:
                sample_id, extra, proposal_boxes = captioned[key]
                items.append(
                    CaptionItem(key, tuple(corpus[key]), int(extra["pred_id"]), proposal_boxes, extra["gt_box"])
                )
                suite.ids.setdefault("scan2cap", {})[sample_id] = key
            else:
                items.append(CaptionItem(key, tuple(corpus[key])))
        suite.items["scan2cap"] = items
        suite.ids.setdefault("scan2cap", {})
    suite.items = {task: suite.items[task] for task in BENCHMARKS if task in suite.items}
    return suite


# -- official annotations -----------------------------------------------------------------------------------------


def _read_attributes(path: Path) -> dict[str, np.ndarray]:
    """``{scene_id: locs [N,6]}`` of a Chat-Scene attribute file (loaded with ``weights_only``: never unpickled)."""
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise SceneInputError(None, path, f"cannot load box attributes: {exc}") from exc
    if not isinstance(data, dict):
        raise SceneInputError(None, path, "expected {scene_id: {'locs': [N,6]}}")
    out = {}
    for scene_id, value in data.items():
        locs = value.get("locs") if isinstance(value, dict) else None
        if locs is None:
            raise SceneInputError(str(scene_id), path, "no 'locs' boxes")
        out[str(scene_id)] = np.asarray(locs, np.float64).reshape(-1, 6)
    return out


def _strip_sos_eos(caption: str) -> str:
    caption = caption.strip()
    caption = caption[4:] if caption.startswith("sos ") else caption
    return caption[:-4] if caption.endswith(" eos") else caption


def load_official_annotations(annotation_dir: str | Path) -> EvalSuite:
    """The ``EvalSuite`` of GPT4Scene's validation annotation folder; benchmarks whose JSON is absent are left out."""
    folder = Path(annotation_dir)
    present = {task: folder / name for task, name in OFFICIAL_FILES.items() if (folder / name).is_file()}
    if not present:
        raise SceneInputError(None, folder, f"none of the GPT4Scene annotation files {sorted(OFFICIAL_FILES.values())}")
    suite = EvalSuite("official", folder)
    needs_boxes = {"scanrefer", "multi3drefer", "scan2cap"} & set(present)
    proposals = _read_attributes(folder / OFFICIAL_PROPOSALS) if needs_boxes else {}
    gt = _read_attributes(folder / OFFICIAL_GT) if needs_boxes else {}
    unique_path = folder / OFFICIAL_UNIQUE
    unique = read_json_file(unique_path) if unique_path.is_file() else None

    def boxes(table: dict[str, np.ndarray], name: str, scene_id: str) -> np.ndarray:
        if scene_id not in table:
            raise SceneInputError(scene_id, folder / name, "no boxes for this scene")
        return table[scene_id]

    def gt_box(scene_id: str, obj_id: int) -> np.ndarray:
        locs = boxes(gt, OFFICIAL_GT, scene_id)
        if not 0 <= obj_id < len(locs):
            raise SceneInputError(scene_id, folder / OFFICIAL_GT, f"object {obj_id} is not one of {len(locs)} GT boxes")
        return locs[obj_id]

    for task, path in present.items():
        rows = read_json_file(path)
        if not isinstance(rows, list):
            raise SceneInputError(None, path, "expected a JSON list of rows")
        ids: dict[str, str] = {}
        items: list[Any] = []
        captioned: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}  # key -> (pred_id, proposals, GT box)
        for number, row in enumerate(rows):
            try:
                qid, scene_id = str(row["qid"]), str(row["scene_id"])
                if qid in ids:
                    raise ValueError(f"qid {qid} repeats (qids must be unique)")
                if task in ("scanqa", "sqa3d"):
                    refs = tuple(str(r) for r in row["ref_captions"])
                    items.append(QAItem(qid, refs, int(row["sqa_type"]) if task == "sqa3d" else None))
                    ids[qid] = qid
                elif task == "scanrefer":
                    obj_id = int(row["obj_id"])
                    flag = None if unique is None else unique.get(scene_id, {}).get(str(obj_id))
                    # Without the lookup every description counts as "multiple"; only overall Acc is meaningful.
                    items.append(
                        ScanReferItem(
                            qid,
                            gt_box(scene_id, obj_id),
                            boxes(proposals, OFFICIAL_PROPOSALS, scene_id),
                            unique=flag == 0,
                        )
                    )
                    ids[qid] = qid
                elif task == "multi3drefer":
                    targets = [gt_box(scene_id, int(i)) for i in row["ref_captions"]]
                    items.append(
                        Multi3DReferItem(
                            qid,
                            np.asarray(targets, np.float64).reshape(-1, 6),
                            boxes(proposals, OFFICIAL_PROPOSALS, scene_id),
                            row["eval_type"],
                        )
                    )
                    ids[qid] = qid
                else:  # scan2cap: one row per GT object that has a matched proposal
                    obj_id = int(row["obj_id"])
                    key = f"{scene_id}|{obj_id}"
                    if key in captioned:
                        raise ValueError(f"two rows for object {key}")
                    captioned[key] = (
                        int(row["pred_id"]),
                        boxes(proposals, OFFICIAL_PROPOSALS, scene_id),
                        gt_box(scene_id, obj_id),
                    )
                    ids[qid] = key
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, SceneInputError):
                    raise
                raise SceneInputError(
                    row.get("scene_id") if isinstance(row, dict) else None, path, f"row {number}: {exc}"
                ) from exc
        if task == "scan2cap":
            corpus = {
                key: tuple(_strip_sos_eos(c) for c in refs)
                for key, refs in read_json_file(folder / OFFICIAL_CORPUS).items()
            }
            missing = sorted(set(captioned) - set(corpus))
            if missing:
                raise SceneInputError(None, folder / OFFICIAL_CORPUS, f"objects missing from the corpus: {missing[:5]}")
            items = [CaptionItem(key, corpus[key], *captioned.get(key, (None, None, None))) for key in sorted(corpus)]
        suite.items[task] = items
        suite.ids[task] = ids
    suite.items = {task: suite.items[task] for task in BENCHMARKS if task in suite.items}
    return suite


def is_official_annotation_dir(path: str | Path) -> bool:
    """True for a folder holding any of GPT4Scene's validation annotation JSONs."""
    return any((Path(path) / name).is_file() for name in OFFICIAL_FILES.values())


# -- predictions --------------------------------------------------------------------------------------------------


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
        try:
            lines = path.read_bytes().decode("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise SceneInputError(None, path, f"cannot read predictions: {exc}") from exc
        for number, line in enumerate(lines, start=1):
            try:
                row = json.loads(line)
                _add(out, str(row["task"]), str(row["sample_id"]), str(row["answer"]), path)
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise SceneInputError(None, path, f"line {number}: not a prediction row ({exc})") from exc
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
    try:
        return [(str(row["qid"]), str(row["pred"])) for row in rows]
    except (KeyError, TypeError) as exc:
        raise SceneInputError(None, file, f"a {task} row lacks qid or pred ({exc})") from exc


# -- scoring ------------------------------------------------------------------------------------------------------


def score_suite(
    suite: EvalSuite,
    predictions: Mapping[str, Mapping[str, str]],
    scorer: CaptionScorer | None = None,
    scanrefer_fallback: Fallback = "zero",
    tasks: Sequence[str] | None = None,
) -> dict[str, dict[str, float]]:
    """``{benchmark: {metric: value}}`` for every benchmark of ``suite`` (or ``tasks``); ``predictions`` keyed by
    prediction id as ``read_predictions`` gives them. One caption scorer (one METEOR JVM) serves all benchmarks."""
    answers = suite.resolve(predictions)
    chosen = [t for t in suite.items if tasks is None or t in tasks]

    def run(active: CaptionScorer | None) -> dict[str, dict[str, float]]:
        scores: dict[str, dict[str, float]] = {}
        for task in chosen:
            given, items = answers.get(task, {}), suite.items[task]
            if task == "scanqa":
                scores[task] = score_scanqa(given, items, active)
            elif task == "sqa3d":
                scores[task] = score_sqa3d(given, items)
            elif task == "scanrefer":
                scores[task] = score_scanrefer(given, items, fallback=scanrefer_fallback)
            elif task == "multi3drefer":
                scores[task] = score_multi3drefer(given, items)
            else:
                scores[task] = score_scan2cap(given, items, active)
        return scores

    if scorer is not None or not {"scanqa", "scan2cap"} & set(chosen):
        return run(scorer)
    with CaptionScorer() as own:
        return run(own)


def default_storage_root(eval_dir: str | Path) -> Path | None:
    """The storage root of an eval set at its standard place ``<root>/dataset/eval/val_<variant>/``, else None."""
    eval_dir = Path(eval_dir).resolve()
    root = eval_dir.parents[2] if len(eval_dir.parents) > 2 else None
    return root if root is not None and StorageLayout(root).scenes_dir.is_dir() else None


def load_any_eval_set(eval_set: str | Path, root: str | Path | None = None) -> EvalSuite:
    """GPT4Scene's annotation folder, or one of our eval sets (``root`` defaults to the one it sits in)."""
    if is_official_annotation_dir(eval_set):
        return load_official_annotations(eval_set)
    root = root if root is not None else default_storage_root(eval_set)
    if root is None:
        raise SceneInputError(None, eval_set, "not at <root>/dataset/eval/val_<variant>/: give the storage root")
    return load_eval_set(eval_set, root)
