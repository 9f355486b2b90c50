"""One scene's GPT4Scene visual prompts, end to end: point cloud → instances → BEV → marked frames.

``prepare_scene`` is the pure per-scene function that Ray tasks and Dagster assets call. It runs the requested
stages in order; a stage that is not requested reads its output from the scene's artifact folder, so one stage can
be rebuilt alone (e.g. the BEV with another marker size). It also evaluates the artifact checks (``check_*``)
on what it wrote, so a bulk run reports them per scene.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

import cv2
import numpy as np
from PIL import Image

from ops.core.errors import SceneInputError
from ops.core.fingerprint import folder_files
from ops.core.grouping import bounds
from ops.core.layout import SceneLayout, raw_frame_name
from ops.core.locking import folder_lock
from ops.core.settings import setting
from ops.prompts.frames import (
    FrameCamera,
    ObjectPoints,
    composite_grid,
    downscale,
    fit_long_side,
    sample_frame_indices,
    visible_object_ids,
)
from ops.prompts.instances import Instances, instances_from_clusters, instances_from_gt
from ops.prompts.pointcloud import pointcloud_from_fusion, pointcloud_from_mesh
from ops.prompts.proposals import instances_from_proposals
from ops.prompts.writer import encode_webp, write_bev, write_frames, write_instances, write_pointcloud
from ops.scannet.frame_sources import Frame, PosedFrames
from ops.scannet.scene import open_scene

STAGES = ("point_cloud", "instance_masks", "bev_image", "marked_frames")
BEV_BLANK_FRACTION = 0.05  # a BEV with fewer non-background pixels than this counts as blank
# UI previews go into the event log with every materialisation: together ~6 KB of WebP (~8 KB as base64) a
# scene, which with the scene's other events keeps a whole rebuild under 30 KB of event log a scene. WebP because at
# these sizes it is ~45% smaller than JPEG at a higher PSNR (288 px BEV: 2.8 KB at 34 dB against JPEG's 6.2 KB at
# 32.5 dB), at ~5 ms an encode instead of 0.4 ms. Each is encoded at the first quality that fits its budget (else the
# lowest); browsers show WebP inline as they do JPEG.
PREVIEW_WEBP_QUALITIES = (60, 45, 30, 20)
PREVIEW_BEV_SIDE = 288  # px, long side of the BEV preview
PREVIEW_BEV_MAX_BYTES = 3_000
PREVIEW_SHEET_WIDTH = 384  # px, the contact sheet: the first 8 marked frames in 2 rows of 4, 4 px apart
PREVIEW_SHEET_MAX_BYTES = 3_500
_SHEET_GAP = 4
_SHEET_CELL = (PREVIEW_SHEET_WIDTH - 3 * _SHEET_GAP) // 4  # long side of a cell


PointcloudSource = Literal["mesh", "fusion"]
InstanceSource = Literal["gt", "proposals", "clusters"]


@dataclass(frozen=True)
class PromptSettings:
    """Every knob of the visual prompts (units: metres and pixels); defaults follow GPT4Scene's released 32-frame,
    512 px data."""

    pointcloud_source: PointcloudSource = setting("mesh", "mesh (ScanNet reconstruction) or fusion (TSDF)")
    fusion_voxel_size: float = setting(0.02, "TSDF voxel size in metres")
    fusion_stride: int = setting(10, "use every n-th valid frame for TSDF fusion")
    instance_source: InstanceSource = setting("gt", "gt, proposals or clusters")
    proposals_dir: str = setting("", "folder of <scene_id>.pt/.npz/.npy/.txt proposals (instance_source proposals)")
    n_frames: int = setting(32, "frames sampled uniformly over the valid frames (8 or 32)")
    image_resolution: int = setting(512, "long side of the saved frames, px")
    bev_long_side: int = setting(1024, "long side of the BEV image, px")
    bev_margin: float = setting(0.05, "BEV margin on every side, as a fraction of the scene's longer xy side")
    bev_marker_size: int = setting(40, "BEV marker diameter, px")
    frame_marker_size: int = setting(20, "frame marker diameter, px")
    min_visible_points: int = setting(10, "visible points needed to mark an object in a frame")
    depth_tolerance: float = setting(0.1, "depth test tolerance of a projected point, metres")
    seed: int = setting(0, "seeds the built-in clusters (instance_source clusters)")

    def __post_init__(self) -> None:
        if self.pointcloud_source not in get_args(PointcloudSource):
            raise ValueError(f"pointcloud_source must be mesh or fusion, got {self.pointcloud_source!r}")
        if self.instance_source not in get_args(InstanceSource):
            raise ValueError(f"instance_source must be gt, proposals or clusters, got {self.instance_source!r}")
        if self.instance_source == "proposals" and not self.proposals_dir:
            raise ValueError("instance_source 'proposals' needs proposals_dir")
        if self.n_frames < 1:
            raise ValueError("n_frames must be >= 1")


@dataclass
class SceneResult:
    """Per-stage metadata, check outcomes and timings of one scene, and where it ran (``node_id``: the Ray node, set
    by the caller that knows it)."""

    scene_id: str
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    previews: dict[str, bytes] = field(default_factory=dict)
    node_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prepare_scene(
    raw_scene_dir: str | Path,
    out_scene_dir: str | Path,
    settings: PromptSettings = PromptSettings(),
    stages: tuple[str, ...] = STAGES,
) -> SceneResult:
    """Build the requested ``stages`` of one scene under ``out_scene_dir`` (docs/ARCHITECTURE.md, Data contracts).

    Writers of one scene take turns: the scene folder's ``folder_lock`` is held throughout."""
    with folder_lock(out_scene_dir):
        return _prepare_scene_locked(raw_scene_dir, out_scene_dir, settings, stages)


def _prepare_scene_locked(
    raw_scene_dir: str | Path, out_scene_dir: str | Path, settings: PromptSettings, stages: tuple[str, ...]
) -> SceneResult:
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}")
    scene = open_scene(raw_scene_dir)
    out = Path(out_scene_dir)
    layout = SceneLayout(out)
    result = SceneResult(scene.scene_id)

    if "point_cloud" in stages:
        with timed_stage(result, "point_cloud"):
            coord, color = _build_pointcloud(scene, settings)
            write_pointcloud(out, coord, color)
            result.stages["point_cloud"] = {
                "num_points": len(coord),
                "source": settings.pointcloud_source,
                "bounds": [b.tolist() for b in bounds(coord)] if len(coord) else [],
            }
    coord, color = _load_pointcloud(layout, scene.scene_id)

    if "instance_masks" in stages:
        with timed_stage(result, "instance_masks"):
            instances = _build_instances(scene, coord, settings)
            write_instances(out, instances, settings.instance_source)
            result.stages["instance_masks"] = {
                "num_objects": instances.num_objects,
                "labelled_points": int((instances.instance >= 0).sum()),
                "source": settings.instance_source,
                "labels": sorted({str(row["label"]) for row in instances.labels}),
            }
    instances = _load_instances(layout, scene.scene_id)

    if "bev_image" in stages:
        write_bev_stage(out, coord, color, instances.boxes, settings, result)
    if "marked_frames" in stages:
        write_marked_frames_stage(out, scene, coord, instances.instance, settings, result)
    return result


@contextmanager
def timed_stage(result: SceneResult, stage: str) -> Iterator[None]:
    """Records the seconds the block took as ``stage``'s time in ``result``."""
    start = time.perf_counter()
    yield
    result.seconds[stage] = round(time.perf_counter() - start, 3)


def write_bev_stage(
    out: Path, coord: np.ndarray, color: np.ndarray, boxes: np.ndarray, settings: PromptSettings, result: SceneResult
) -> None:
    """The ``bev_image`` stage over a saved point cloud (axis-aligned, +Z up, metres) and its instance boxes: writes
    ``bev/`` under ``out`` and records its metadata, check, UI preview and time in ``result``."""
    with timed_stage(result, "bev_image"):
        meta, marked = write_bev(
            out,
            coord,
            color,
            boxes,
            long_side=settings.bev_long_side,
            margin=settings.bev_margin,
            marker_size=settings.bev_marker_size,
        )
        result.stages["bev_image"] = {"size": meta["size"], "num_markers": len(meta["markers"])}
        result.checks["bev_not_blank"] = check_bev_not_blank(marked)
        result.previews["bev"] = _preview_webp(marked, PREVIEW_BEV_SIDE, PREVIEW_BEV_MAX_BYTES)


def write_marked_frames_stage(
    out: Path,
    source: PosedFrames,
    coord: np.ndarray,
    instance: np.ndarray,
    settings: PromptSettings,
    result: SceneResult,
) -> None:
    """The ``marked_frames`` stage: samples ``settings.n_frames`` of ``source``'s valid frames (a scan, or a capture
    turned into the saved cloud's frame), writes them with their markers under ``out`` and records the metadata,
    checks, UI contact sheet and time in ``result``."""
    with timed_stage(result, "marked_frames"):
        valid = np.flatnonzero(source.valid_frame_mask())
        if len(valid) == 0:
            raise SceneInputError(source.scene_id, source.frames_path, "no frame has a valid (finite) pose")
        indices = sample_frame_indices(valid, settings.n_frames)
        frames: list[Frame] = []  # the frames without their colour, for the marker check

        def stream() -> Iterator[Frame]:  # one full-size colour image in memory at a time
            for index in indices:
                (frame,) = source.read_frames([index])
                frames.append(replace(frame, rgb=None))
                yield frame

        sheet_cells: list[np.ndarray] = []  # the UI contact sheet's cells, made as the marked frames are saved

        def keep_for_sheet(n: int, marked: np.ndarray) -> None:
            if n < 8:
                sheet_cells.append(_shrink(marked, _SHEET_CELL))

        meta = write_frames(
            out,
            stream(),
            coord,
            instance,
            source.depth_intrinsics,
            source.color_intrinsics,
            source.depth_shift,
            image_resolution=settings.image_resolution,
            marker_size=settings.frame_marker_size,
            min_visible_points=settings.min_visible_points,
            depth_tolerance=settings.depth_tolerance,
            on_marked=keep_for_sheet,
        )
        result.stages["marked_frames"] = {
            "num_frames": len(meta["frames"]),
            "source_indices": [entry["source_index"] for entry in meta["frames"]],
            "markers_per_frame": [len(entry["markers"]) for entry in meta["frames"]],
        }
        result.checks["frames_distinct"] = check_frames_distinct(out)
        result.checks["markers_complete"] = check_markers_complete(out, frames, source, settings)
        sheet = composite_grid(sheet_cells, rows=2, cols=4, gap=_SHEET_GAP)
        result.previews["frames"] = _preview_webp(sheet, PREVIEW_SHEET_WIDTH, PREVIEW_SHEET_MAX_BYTES)


def largest_first(raw_scene_dirs: Sequence[str | Path]) -> list[str | Path]:
    """``raw_scene_dirs`` ordered by the bytes of their files, largest first (ties by name).

    Handed to workers in this order, the longest scenes start first and a run of many scenes does not end waiting
    on one long scene that happened to come last (the longest-processing-time-first rule). A folder that cannot be
    read sorts last, where its task reports the error. Hidden entries do not count (``ops.core.fingerprint``).
    """

    def size(folder: str | Path) -> int:
        try:
            return sum(stat.st_size for _, stat in folder_files(folder))
        except OSError:  # e.g. a dangling link: the scene's own task reports what is wrong
            return 0

    sizes = {str(folder): size(folder) for folder in raw_scene_dirs}
    return sorted(raw_scene_dirs, key=lambda folder: (-sizes[str(folder)], Path(folder).name))


# -- stages ---------------------------------------------------------------------------------------------------


def _build_pointcloud(scene, settings: PromptSettings) -> tuple[np.ndarray, np.ndarray]:
    if settings.pointcloud_source == "mesh":
        mesh = scene.mesh()
        return pointcloud_from_mesh(mesh.vertices, mesh.colors)
    valid = np.flatnonzero(scene.valid_frame_mask())[:: max(1, settings.fusion_stride)]
    frames = (frame for index in valid.tolist() for frame in scene.read_frames([index]))
    return pointcloud_from_fusion(
        frames, scene.depth_intrinsics, scene.depth_shift, voxel_size=settings.fusion_voxel_size
    )


def _build_instances(scene, coord: np.ndarray, settings: PromptSettings) -> Instances:
    mesh_vertices = None if settings.pointcloud_source == "mesh" else scene.mesh().vertices
    if settings.instance_source == "gt":
        instances = instances_from_gt(coord, scene.object_ids(), scene.object_labels(), mesh_vertices=mesh_vertices)
        if instances.num_objects == 0:  # nothing to mark or ask about: refuse rather than write empty prompts
            raise SceneInputError(
                scene.scene_id,
                scene.files.aggregation,
                "no annotated object with points (walls, floor and ceiling do not count)",
            )
        return instances
    if settings.instance_source == "proposals":
        path = _find_proposals(Path(settings.proposals_dir), scene.scene_id)
        return instances_from_proposals(path, coord, mesh_vertices=mesh_vertices, scene_id=scene.scene_id)
    return instances_from_clusters(coord, seed=settings.seed)


def _find_proposals(folder: Path, scene_id: str) -> Path:
    for suffix in (".pt", ".pth", ".npz", ".npy", ".txt"):
        candidate = folder / f"{scene_id}{suffix}"
        if candidate.is_file():
            return candidate
    raise SceneInputError(scene_id, folder / f"{scene_id}.pt", "no proposal file (.pt/.pth/.npz/.npy/.txt) found")


def _load_pointcloud(layout: SceneLayout, scene_id: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        return (np.load(layout.coord, allow_pickle=False), np.load(layout.color, allow_pickle=False))
    except FileNotFoundError as exc:
        raise SceneInputError(scene_id, exc.filename, "point_cloud has not been materialised yet") from exc


def _load_instances(layout: SceneLayout, scene_id: str) -> Instances:
    try:
        labels = json.loads(layout.labels.read_text())["objects"]
        return Instances(
            np.load(layout.instance, allow_pickle=False),
            np.load(layout.boxes, allow_pickle=False),
            labels,
        )
    except FileNotFoundError as exc:
        raise SceneInputError(scene_id, exc.filename, "instance_masks has not been materialised yet") from exc


# -- artifact checks ------------------------------------------------------------------------------------------


def check_bev_not_blank(image: np.ndarray) -> dict[str, Any]:
    """Passes when more than ``BEV_BLANK_FRACTION`` of the pixels of the BEV (RGB, as saved) are not background
    (white)."""
    background = cv2.inRange(image, (250, 250, 250), (255, 255, 255))  # 255 where every channel is >= 250
    filled = 1.0 - cv2.countNonZero(background) / background.size
    return {"passed": filled > BEV_BLANK_FRACTION, "filled_fraction": round(filled, 4)}


def check_frames_distinct(scene_dir: str | Path) -> dict[str, Any]:
    """Passes when the sampled frames under ``scene_dir`` have distinct source indices and no two raw images are
    identical files.

    Files of different sizes differ, so only raw images whose size another one shares are read and compared."""
    layout = SceneLayout(Path(scene_dir))
    entries = json.loads(layout.frames_meta.read_text())["frames"]
    indices = [entry["source_index"] for entry in entries]
    by_size: dict[int, list[Path]] = {}
    for entry in entries:
        raw = layout.frame(raw_frame_name(entry["file"]))
        by_size.setdefault(raw.stat().st_size, []).append(raw)
    same = [group for group in by_size.values() if len(group) > 1]
    identical = any(len({path.read_bytes() for path in group}) < len(group) for group in same)
    distinct = len(set(indices)) == len(indices) and not identical
    return {"passed": distinct, "num_frames": len(indices), "distinct_indices": len(set(indices))}


def check_markers_complete(
    scene_dir: str | Path, source_frames: Sequence[Any], scene, settings: PromptSettings
) -> dict[str, Any]:
    """Passes when every object that is visible in a saved frame (recomputed from the saved point cloud,
    instances and frame list, with the source frames' depth) has a marker there, and no marker names an
    invisible object, and at least one frame shows a marker (a scene whose frames show none is useless as
    training data). ``source_frames`` are the frames as read from the scan, in any order."""
    layout = SceneLayout(Path(scene_dir))
    objects = ObjectPoints(np.load(layout.coord, allow_pickle=False), np.load(layout.instance, allow_pickle=False))
    entries = json.loads(layout.frames_meta.read_text())["frames"]
    by_index = {int(frame.index): frame for frame in source_frames}
    missing, extra = [], []
    for entry in entries:
        frame = by_index[entry["source_index"]]
        with Image.open(layout.frame(entry["file"])) as saved:  # reads the header only
            width, height = saved.size
        camera = FrameCamera(
            frame.pose,
            scene.depth_intrinsics,
            frame.depth,
            scene.depth_shift,
            (width, height),
            np.asarray(entry["intrinsics"]),
        )
        expected = visible_object_ids(objects, camera, settings.min_visible_points, settings.depth_tolerance)
        drawn = {int(key) for key in entry["markers"]}
        missing += [f"{entry['file']}:{key}" for key in sorted(set(expected) - drawn)]
        extra += [f"{entry['file']}:{key}" for key in sorted(drawn - set(expected))]
    outcome = {"passed": not missing and not extra, "missing": missing[:20], "unexpected": extra[:20]}
    if not any(entry["markers"] for entry in entries):  # e.g. poses or intrinsics that project nothing into view
        outcome.update(passed=False, reason="no sampled frame shows any object marker")
    return outcome


# -- images ---------------------------------------------------------------------------------------------------


def _preview_webp(rgb: np.ndarray, long_side: int, max_bytes: int) -> bytes:
    """A UI preview: the image shrunk to ``long_side`` px at most, as WebP (lossy; a PNG of a BEV preview is ~35
    times the bytes) of the best quality in ``PREVIEW_WEBP_QUALITIES`` that fits ``max_bytes`` (else the lowest)."""
    small = _shrink(rgb, long_side)
    for quality in PREVIEW_WEBP_QUALITIES:
        encoded = encode_webp(small, quality)
        if len(encoded) <= max_bytes:
            break
    return encoded


def _shrink(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """The image scaled to ``long_side`` px at most for a preview (``downscale`` without pixel alignment)."""
    return downscale(rgb, fit_long_side(rgb.shape[1], rgb.shape[0], long_side), keep_alignment=False)
