"""GPT4Scene's / Chat-Scene's validation annotation folder (``evaluate/annotation/``) as an ``EvalSuite``.

The task JSONs ``scanqa_val.json``, ``sqa3d_val.json``, ``scanrefer_mask3d_val.json``, ``multi3dref_mask3d_val.json``,
``scan2cap_mask3d_val.json`` (rows ``scene_id, obj_id, prompt, ref_captions, qid`` + ``sqa_type`` / ``eval_type`` /
``pred_id, iou``), the box files ``scannet_mask3d_val_attributes.pt`` (proposals) and ``scannet_val_attributes.pt``
(GT), each ``{scene_id: {"locs": [N,6] tensor, ...}}``, ``scan2cap_val_corpus.json`` and, optionally,
``scanrefer_unique_multiple_lookup.json`` (``{scene: {object_id: 0 unique | 1 multiple}}``). Predictions are keyed
by ``qid``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ops.core.errors import SceneInputError
from ops.dataset.annotations import read_json_file
from ops.metrics.benchmarks import CaptionItem, Multi3DReferItem, QAItem, ScanReferItem
from ops.metrics.suite import BENCHMARKS, EvalSuite

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
