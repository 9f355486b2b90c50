"""What samples need from one prepared scene: marker boxes, GT boxes and image paths; object → ID matching.

Object IDs (``<OBJ{id:03d}>``) are rows of the scene's ``instances/boxes.npy``. Targets map to IDs by
``match_object``: with ``gt`` instances through ``labels.json`` ``object_id``; with ``proposals``/``clusters`` to
the proposal of highest 3D IoU with the GT box (Chat-Scene), kept for training if IoU >= ``iou_threshold``. Val
keeps every query whose targets have GT boxes (the best match gives the reference answer, empty when the scene has no
candidate ID) and adds what evaluation needs (``Sample.eval``). GT boxes come from every aggregation object
(``ops.scannet.scene`` ``objects()``).

Images (relative to the storage root), by variant:
- ``marked``: ``bev/bev.png`` first, then ``frames/frame_00.jpg`` .. in sampling order (the GPT4Scene input);
- ``no_bev``: the marked frames only (the "w/o BEV" ablation);
- ``unmarked``: the unmarked frames ``frames/raw_XX.jpg`` only (no unmarked BEV is rendered), i.e. "video only":
  train on ``marked`` and evaluate on ``unmarked`` for "trained with markers, evaluated without". Grounding and
  captioning prompts still name ``<OBJ###>`` IDs, which the unmarked images do not show.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ops.core.errors import SceneInputError
from ops.core.fingerprint import sha256_hex
from ops.core.layout import StorageLayout, raw_frame_name
from ops.dataset.annotations import read_json_file
from ops.dataset.samples import VARIANTS
from ops.prompts.instances import box_iou_3d
from ops.scannet.scene import open_scene
from ops.scannet.scene_id import validate_scene_id


@dataclass(frozen=True, eq=False)
class SceneContext:
    """What samples need from one scene: marker boxes and their ScanNet ids, GT boxes, image paths.

    ``boxes`` [K,6] (centre, size; aligned frame, metres), row k = marker ID k; ``object_ids[k]`` its ScanNet
    objectId (``gt`` instances) or None; ``gt_boxes`` objectId → GT box of every aggregation object with points.
    Paths are relative to the storage root.
    """

    scene_id: str
    source: str
    boxes: np.ndarray
    object_ids: tuple[int | None, ...]
    gt_boxes: dict[int, np.ndarray]
    bev: str
    frames: tuple[str, ...]
    raw_frames: tuple[str, ...]
    boxes_path: str
    boxes_sha256: str

    def images(self, variant: str) -> tuple[str, ...]:
        """The image list of ``variant`` (see the module docstring)."""
        if variant == "marked":
            return (self.bev, *self.frames)
        if variant == "no_bev":
            return self.frames
        if variant == "unmarked":
            return self.raw_frames
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def load_scene_context(root: str | Path, raw_scene_dir: str | Path) -> SceneContext:
    """Read ``<root>/scenes/<scene_id>/`` (instances, BEV, frames) and the raw scene's GT boxes.

    Missing or inconsistent artifacts raise ``SceneInputError`` naming the scene and the file.
    """
    root = Path(root)
    raw = open_scene(raw_scene_dir)
    scene_id = validate_scene_id(raw.scene_id)
    scene = StorageLayout(root).scene(scene_id)
    rel = StorageLayout(Path("")).scene(scene_id)  # the same paths relative to the root, as samples record them

    def fail(path: Path, reason: str) -> SceneInputError:
        return SceneInputError(scene_id, path, reason)

    labels = read_json_file(scene.labels) if scene.labels.is_file() else None
    if not isinstance(labels, dict) or not isinstance(labels.get("objects"), list) or "source" not in labels:
        raise fail(scene.labels, "missing, or not {'source': ..., 'objects': [...]}")
    try:
        boxes_bytes = scene.boxes.read_bytes()
        boxes = np.load(io.BytesIO(boxes_bytes), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise fail(scene.boxes, f"cannot read boxes: {exc}") from exc
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 6) if boxes.size == 0 else np.asarray(boxes, np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 6 or not np.isfinite(boxes).all():
        raise fail(scene.boxes, f"expected finite [K,6] boxes, got shape {boxes.shape}")
    if len(labels["objects"]) != len(boxes):
        raise fail(scene.labels, f"{len(labels['objects'])} label rows for {len(boxes)} boxes")
    object_ids = []
    for k, row in enumerate(labels["objects"]):
        value = row.get("object_id") if isinstance(row, dict) else None
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise fail(scene.labels, f"objects[{k}].object_id must be an integer or null, got {value!r}")
        object_ids.append(value)

    meta = read_json_file(scene.frames_meta) if scene.frames_meta.is_file() else None
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list) or not meta["frames"]:
        raise fail(scene.frames_meta, "missing, or no 'frames' list")
    frames, raw_frames = [], []
    for entry in meta["frames"]:
        name = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not re.fullmatch(r"frame_\d+\.jpg", name):
            raise fail(scene.frames_meta, f"frame entry {entry!r} has no 'file' named frame_XX.jpg")
        frames.append(rel.frame(name))
        raw_frames.append(rel.frame(raw_frame_name(name)))
    for path in (rel.bev_image, *frames, *raw_frames):
        if not (root / path).is_file():
            raise fail(root / path, "image missing")

    gt_boxes = {int(o["object_id"]): np.asarray(o["box"], np.float64) for o in raw.objects() if o["box"] is not None}
    return SceneContext(
        scene_id,
        str(labels["source"]),
        boxes,
        tuple(object_ids),
        gt_boxes,
        rel.bev_image.as_posix(),
        tuple(p.as_posix() for p in frames),
        tuple(p.as_posix() for p in raw_frames),
        rel.boxes.as_posix(),
        sha256_hex(boxes_bytes),
    )


# -- object ID mapping --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectMatch:
    """The marker ID a ScanNet object maps to (None: no candidate) and the 3D IoU of their boxes."""

    marker_id: int | None
    iou: float


def match_object(scene: SceneContext, object_id: int) -> ObjectMatch:
    """``gt`` instances: the row whose ``object_id`` is the object's; otherwise the proposal of highest IoU with the
    object's GT box (first on ties). An object without a GT box never matches."""
    gt = scene.gt_boxes.get(object_id)
    if gt is None or len(scene.boxes) == 0:
        return ObjectMatch(None, 0.0)
    if scene.source == "gt":
        rows = [k for k, oid in enumerate(scene.object_ids) if oid == object_id]
        if not rows:
            return ObjectMatch(None, 0.0)
        return ObjectMatch(rows[0], round(float(box_iou_3d(scene.boxes[rows[0]], gt)), 6))
    ious = box_iou_3d(scene.boxes, gt[None, :])
    best = int(np.argmax(ious))
    return ObjectMatch(best, round(float(ious[best]), 6))


def match_scan2cap(scene: SceneContext, object_ids: Iterable[int]) -> dict[int, ObjectMatch]:
    """Scan2Cap's object → ID matching over the described ``object_ids``.

    ``gt`` instances: as ``match_object``. Proposals (Chat-Scene ``prepare_scan2cap_annos.py``): every proposal
    picks the described object of highest IoU; each object keeps the proposal that picked it with the highest IoU.
    Objects no proposal overlaps are left out.
    """
    described = sorted(oid for oid in set(object_ids) if oid in scene.gt_boxes)
    if scene.source == "gt":
        matches = {oid: match_object(scene, oid) for oid in described}
        return {oid: m for oid, m in matches.items() if m.marker_id is not None}
    if not described or len(scene.boxes) == 0:
        return {}
    gt = np.stack([scene.gt_boxes[oid] for oid in described])
    ious = box_iou_3d(scene.boxes[:, None, :], gt[None, :, :])  # [K proposals, G objects]
    out: dict[int, ObjectMatch] = {}
    for k in range(len(scene.boxes)):
        g = int(np.argmax(ious[k]))
        iou = round(float(ious[k, g]), 6)
        if iou > 0 and (described[g] not in out or iou > out[described[g]].iou):
            out[described[g]] = ObjectMatch(k, iou)
    return dict(sorted(out.items()))
