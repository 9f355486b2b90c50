"""Write one scene's GPT4Scene visual prompts as the artifact folders (docs/ARCHITECTURE.md, Data contracts) under
``<root>/scenes/<scene_id>/``.

Each ``write_*`` function fills one folder (``pointcloud/``, ``instances/``, ``bev/``, ``frames/``) through
``ops.core.atomic.staging_dir``: the folder appears complete or not at all, and replaces an older version in one rename.
Images are encoded by OpenCV with fixed parameters (PNG compression 6; baseline JPEG quality 95, 4:2:0) and JSON is
canonical, so the same inputs and settings give byte-identical files. Images are RGB in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ops.core.atomic import staging_dir, write_bytes, write_json, write_npy
from ops.core.layout import SceneLayout, marked_frame_name, raw_frame_name
from ops.prompts.bev import bev_markers, draw_bev_markers, render_bev
from ops.prompts.frames import (
    DEPTH_TOLERANCE,
    IMAGE_RESOLUTION,
    MIN_VISIBLE_POINTS,
    FrameCamera,
    ObjectPoints,
    downscale,
    mark_frame,
    resized_geometry,
    visible_markers,
)
from ops.prompts.instances import Instances

PNG_COMPRESSION = 6
JPEG_QUALITY = 95
INSTANCE_SOURCES = ("gt", "proposals", "clusters")


class SourceFrame(Protocol):
    """A video frame as ``ops.scannet.scene`` reads it: its index, RGB uint8, depth uint16 and aligned 4x4 pose."""

    index: int
    rgb: np.ndarray
    depth: np.ndarray
    pose: np.ndarray


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 image (fixed settings)."""
    params = [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION]
    ok, data = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """Baseline JPEG bytes of an RGB uint8 image (fixed settings)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 0, cv2.IMWRITE_JPEG_PROGRESSIVE, 0]
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def encode_webp(rgb: np.ndarray, quality: int) -> bytes:
    """Lossy WebP bytes of an RGB uint8 image at ``quality`` (0-100)."""
    ok, data = cv2.imencode(
        ".webp", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_WEBP_QUALITY, quality]
    )
    if not ok:
        raise ValueError("WebP encoding failed")
    return data.tobytes()


def write_pointcloud(scene_dir: str | Path, coord: np.ndarray, color: np.ndarray) -> Path:
    """``pointcloud/coord.npy`` (float32 [P,3]) and ``pointcloud/color.npy`` (uint8 [P,3])."""
    layout = SceneLayout(Path(scene_dir))
    with staging_dir(layout.pointcloud) as tmp:
        write_npy(tmp / layout.coord.name, np.asarray(coord, dtype=np.float32))
        write_npy(tmp / layout.color.name, np.asarray(color, dtype=np.uint8))
    return layout.pointcloud


def write_instances(scene_dir: str | Path, instances: Instances, source: str) -> Path:
    """``instances/instance.npy``, ``boxes.npy`` and ``labels.json`` (``{"source", "objects": [label rows]}``)."""
    if source not in INSTANCE_SOURCES:
        raise ValueError(f"source must be one of {INSTANCE_SOURCES}, got {source!r}")
    layout = SceneLayout(Path(scene_dir))
    with staging_dir(layout.instances) as tmp:
        write_npy(tmp / layout.instance.name, np.asarray(instances.instance, dtype=np.int32))
        write_npy(tmp / layout.boxes.name, np.asarray(instances.boxes, dtype=np.float32).reshape(-1, 6))
        write_json(tmp / layout.labels.name, {"source": source, "objects": instances.labels})
    return layout.instances


def write_bev(
    scene_dir: str | Path,
    coord: np.ndarray,
    color: np.ndarray,
    boxes: np.ndarray,
    long_side: int = 1024,
    margin: float = 0.05,
    ceiling_cut: float | None = None,
    marker_size: int | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """``bev/bev.png`` (marked) and ``bev/bev.json`` (``size``, ``world_to_pixel``, ``markers``); returns the JSON
    and the marked RGB image, the pixels of the (lossless) PNG."""
    bev = render_bev(coord, color, long_side=long_side, margin=margin, ceiling_cut=ceiling_cut)
    markers = bev_markers(boxes, bev.world_to_pixel)
    meta = {"size": list(bev.size), "world_to_pixel": bev.world_to_pixel.tolist(), "markers": markers}
    marked = draw_bev_markers(bev, markers, marker_size)
    save_bev(scene_dir, marked, meta)
    return meta, marked


def save_bev(scene_dir: str | Path, marked: np.ndarray, meta: dict[str, Any]) -> Path:
    """``bev/bev.png`` (the marked RGB image) and ``bev/bev.json`` of a BEV already rendered and marked."""
    layout = SceneLayout(Path(scene_dir))
    with staging_dir(layout.bev) as tmp:
        write_bytes(tmp / layout.bev_image.name, encode_png(marked))
        write_json(tmp / layout.bev_meta.name, meta)
    return layout.bev


def write_frames(
    scene_dir: str | Path,
    frames: Iterable[SourceFrame],
    coord: np.ndarray,
    instance: np.ndarray,
    depth_intrinsics: np.ndarray,
    color_intrinsics: np.ndarray,
    depth_shift: float,
    image_resolution: int = IMAGE_RESOLUTION,
    marker_size: int | None = None,
    min_visible_points: int = MIN_VISIBLE_POINTS,
    depth_tolerance: float = DEPTH_TOLERANCE,
    on_marked: Callable[[int, np.ndarray], None] | None = None,
) -> dict[str, Any]:
    """``frames/frame_XX.jpg`` (marked), ``frames/raw_XX.jpg`` and ``frames/frames.json``; returns the JSON.

    ``frames`` are the sampled frames in order (see ``ops.prompts.frames.sample_frame_indices``), read once, so they can
    be a generator that decodes each frame when it is needed; XX counts from 00. ``on_marked(XX, rgb)``, when
    given, sees each marked image as it is saved (before JPEG), e.g. to build a preview without reading it back.
    """
    entries = []
    objects = ObjectPoints(coord, instance)
    layout = SceneLayout(Path(scene_dir))
    with staging_dir(layout.frames) as tmp:
        for n, frame in enumerate(frames):
            # visibility first, then the image: resized, saved raw, marked in place and saved, while it is in cache
            height, width = frame.rgb.shape[:2]
            size, k_image = resized_geometry(width, height, color_intrinsics, image_resolution)
            camera = FrameCamera(frame.pose, depth_intrinsics, frame.depth, depth_shift, size, k_image)
            markers = visible_markers(objects, camera, min_visible_points, depth_tolerance)
            # a frame already small enough is copied, so marking leaves the caller's image intact
            image = downscale(frame.rgb, size) if size != (width, height) else np.array(frame.rgb, order="C")
            name = marked_frame_name(n)
            write_bytes(tmp / raw_frame_name(name), encode_jpeg(image))
            marked = mark_frame(image, markers, marker_size, in_place=True)
            write_bytes(tmp / name, encode_jpeg(marked))
            if on_marked is not None:
                on_marked(n, marked)
            entries.append(
                {
                    "file": name,
                    "source_index": int(frame.index),
                    "pose": np.asarray(frame.pose, dtype=np.float64).tolist(),
                    "intrinsics": np.asarray(k_image, dtype=np.float64).tolist(),
                    "markers": markers,
                }
            )
        meta = {"frames": entries}
        write_json(tmp / layout.frames_meta.name, meta)
    return meta
