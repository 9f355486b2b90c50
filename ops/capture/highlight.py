"""Pictures of the objects an answer names, drawn on a prepared scene or capture folder (``SceneLayout``).

``bev_highlight.png``: the marked BEV with every other pixel faded and each named object's top-down box drawn (its
``boxes.npy`` row through ``bev.json``'s ``world_to_pixel``); ``frame_XX_highlight.png``: each marked frame whose
``frames.json`` markers hold a named object, with that object's box drawn around its projected points (the saved
frame's pose and intrinsics; points behind the camera or outside the image are left out).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ops.core.atomic import write_bytes
from ops.core.layout import SceneLayout
from ops.prompts.bev import apply_world_to_pixel
from ops.prompts.markers import marker_color
from ops.prompts.writer import encode_png

FADE = 0.45  # how much of the original colour other pixels keep


def _box_corners_xy(box: np.ndarray) -> np.ndarray:
    (cx, cy), (sx, sy) = box[:2], box[3:5]
    return np.array(
        [[cx - sx / 2, cy - sy / 2], [cx + sx / 2, cy - sy / 2], [cx + sx / 2, cy + sy / 2], [cx - sx / 2, cy + sy / 2]]
    )


def highlight_bev(layout: SceneLayout, object_ids: Sequence[int]) -> np.ndarray:
    """The marked BEV (RGB) with the named objects' top-down boxes drawn and the rest faded."""
    image = cv2.imread(str(layout.bev_image), cv2.IMREAD_COLOR_RGB)
    meta = json.loads(layout.bev_meta.read_text())
    boxes = np.load(layout.boxes, allow_pickle=False)
    faded = (image * FADE + 255 * (1 - FADE)).astype(np.uint8)
    keep = np.zeros(image.shape[:2], np.uint8)
    corners = {
        k: apply_world_to_pixel(np.asarray(meta["world_to_pixel"]), _box_corners_xy(boxes[k])) for k in object_ids
    }
    for polygon in corners.values():
        cv2.fillPoly(keep, [np.round(polygon).astype(np.int32)], 255)
    out = np.where(keep[..., None] > 0, image, faded)
    thickness = max(2, round(max(image.shape[:2]) / 256))
    for k, polygon in corners.items():
        cv2.polylines(out, [np.round(polygon).astype(np.int32)], True, marker_color(k), thickness, cv2.LINE_AA)
    return out


def highlight_frame(layout: SceneLayout, entry: dict, object_ids: Sequence[int], coord, instance) -> np.ndarray:
    """One marked frame (RGB) with each named object visible in it boxed around its projected points."""
    image = cv2.imread(str(layout.frame(entry["file"])), cv2.IMREAD_COLOR_RGB)
    height, width = image.shape[:2]
    world_to_camera = np.linalg.inv(np.asarray(entry["pose"], dtype=np.float64))
    k_image = np.asarray(entry["intrinsics"], dtype=np.float64)
    thickness = max(2, round(max(width, height) / 256))
    for k in object_ids:
        if str(k) not in entry["markers"]:
            continue
        points = coord[instance == k].astype(np.float64)
        camera = points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
        camera = camera[camera[:, 2] > 0.05]
        uv = camera[:, :2] / camera[:, 2:3] @ k_image[:2, :2].T + k_image[:2, 2]
        uv = uv[(uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)]
        if len(uv):
            low, high = np.floor(uv.min(0)).astype(int), np.ceil(uv.max(0)).astype(int)
            cv2.rectangle(image, tuple(low.tolist()), tuple(high.tolist()), marker_color(k), thickness, cv2.LINE_AA)
    return image


def write_highlights(scene_dir: str | Path, object_ids: Sequence[int], out_dir: str | Path) -> list[Path]:
    """``bev_highlight.png`` and a ``frame_XX_highlight.png`` per frame showing a named object, under ``out_dir``;
    returns their paths (BEV first)."""
    layout = SceneLayout(Path(scene_dir))
    out_dir = Path(out_dir)
    written = [out_dir / "bev_highlight.png"]
    write_bytes(written[0], encode_png(highlight_bev(layout, object_ids)))
    coord = np.load(layout.coord, allow_pickle=False)
    instance = np.load(layout.instance, allow_pickle=False)
    for entry in json.loads(layout.frames_meta.read_text())["frames"]:
        if any(str(k) in entry["markers"] for k in object_ids):
            path = out_dir / f"{Path(entry['file']).stem}_highlight.png"
            write_bytes(path, encode_png(highlight_frame(layout, entry, object_ids, coord, instance)))
            written.append(path)
    return written
