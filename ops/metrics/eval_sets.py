"""Our eval shard sets as an ``EvalSuite``, and ``load_any_eval_set`` (ours or GPT4Scene's annotation folder).

An eval shard set (``<root>/dataset/eval/val_<variant>/``, ``ops.dataset.shards`` layout with the ``eval`` column and
``scan2cap_corpus.json``): proposal boxes are read from the ``instances/boxes.npy`` files the rows name (relative to
the storage root) and must still have the sha256 recorded at build time. Predictions are keyed by ``sample_id``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ops.core.errors import SceneInputError
from ops.core.fingerprint import sha256_hex
from ops.core.layout import SCAN2CAP_CORPUS, StorageLayout
from ops.dataset.annotations import read_json_file
from ops.metrics.benchmarks import CaptionItem, Multi3DReferItem, QAItem, ScanReferItem
from ops.metrics.official import is_official_annotation_dir, load_official_annotations
from ops.metrics.suite import BENCHMARKS, EvalSuite


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


# Per task but Scan2Cap: (sample id, the row's eval fields, its proposal boxes on demand) → the scoring item.
ITEM_BUILDERS: dict[str, Callable[[str, dict[str, Any], Callable[[], np.ndarray]], Any]] = {
    "scanqa": lambda sample_id, extra, proposals: QAItem(sample_id, tuple(extra["refs"])),
    "sqa3d": lambda sample_id, extra, proposals: QAItem(
        sample_id, tuple(extra["refs"]), question_type=int(extra["sqa_type"])
    ),
    "scanrefer": lambda sample_id, extra, proposals: ScanReferItem(
        sample_id, extra["gt_box"], proposals(), bool(extra["unique"])
    ),
    "multi3drefer": lambda sample_id, extra, proposals: Multi3DReferItem(
        sample_id, np.asarray(extra["gt_boxes"], np.float64).reshape(-1, 6), proposals(), extra["eval_type"]
    ),
}


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

        if task == "scan2cap":  # one item per corpus object, made once every row is read
            if extra["key"] in captioned:
                raise SceneInputError(scene_id, eval_dir, f"two Scan2Cap rows for object {extra['key']}")
            captioned[extra["key"]] = (sample_id, extra, proposals())
            continue
        if task not in ITEM_BUILDERS:
            raise SceneInputError(scene_id, eval_dir, f"row {sample_id}: unknown task {task!r}")
        suite.items.setdefault(task, []).append(ITEM_BUILDERS[task](sample_id, extra, proposals))
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
