"""One capture's visual prompts: TSDF fusion → floor alignment → proposals → BEV → marked frames.

The same ops as the scans (``ops.prompts``: fusion, clustered or imported proposals, the BEV and frame writers,
the artifact checks) write the same folders (``SceneLayout``) under ``<root>/captures/<name>/``. What differs: there
is no mesh and no annotation, so the point cloud is always fused and the instances are proposals; and there is no
axis-alignment file, so the fused cloud (made in the capture's own world) is aligned by
``ops.capture.alignment.estimate_floor_alignment`` before it is saved. The alignment is saved beside the cloud
(``pointcloud/alignment.json``) and later stages read it back, so each stage can be rebuilt alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from ops.capture.alignment import estimate_floor_alignment
from ops.capture.readers import Capture, open_capture
from ops.core.atomic import staging_dir, write_json, write_npy
from ops.core.errors import SceneInputError
from ops.core.grouping import bounds
from ops.core.layout import SceneLayout
from ops.core.locking import folder_lock
from ops.core.settings import setting
from ops.prompts.driver import (
    STAGES,
    PromptSettings,
    SceneResult,
    timed_stage,
    write_bev_stage,
    write_marked_frames_stage,
)
from ops.prompts.instances import Instances, instances_from_clusters
from ops.prompts.pointcloud import pointcloud_from_fusion
from ops.prompts.proposals import instances_from_proposals
from ops.prompts.writer import write_instances

CaptureInstanceSource = Literal["clusters", "proposals"]


@dataclass(frozen=True)
class CaptureSettings:
    """The knobs of a capture's visual prompts (metres and pixels); the scans' defaults where they share one."""

    fusion_voxel_size: float = setting(0.02, "TSDF voxel size in metres")
    fusion_stride: int = setting(5, "use every n-th valid frame for TSDF fusion")
    fusion_depth_trunc: float = setting(6.0, "depth beyond this many metres is not fused")
    cluster_eps: float = setting(0.08, "DBSCAN neighbour distance of the built-in clusters, metres")
    instance_source: CaptureInstanceSource = setting("clusters", "clusters (built-in) or proposals (imported)")
    proposals_dir: str = setting("", "folder of <name>.pt/.npz/.npy/.txt proposals over the saved point cloud")
    n_frames: int = setting(32, "frames sampled uniformly over the valid frames (8 or 32)")
    image_resolution: int = setting(512, "long side of the saved frames, px")
    bev_long_side: int = setting(1024, "long side of the BEV image, px")
    bev_marker_size: int = setting(40, "BEV marker diameter, px")
    frame_marker_size: int = setting(20, "frame marker diameter, px")
    min_visible_points: int = setting(10, "visible points needed to mark an object in a frame")
    seed: int = setting(0, "seeds the floor RANSAC and the clusters")

    def __post_init__(self) -> None:
        if self.instance_source not in get_args(CaptureInstanceSource):
            raise ValueError(f"instance_source must be clusters or proposals, got {self.instance_source!r}")
        if self.instance_source == "proposals" and not self.proposals_dir:
            raise ValueError("instance_source 'proposals' needs proposals_dir")
        if self.fusion_stride < 1 or self.n_frames < 1:
            raise ValueError("fusion_stride and n_frames must be >= 1")

    def prompt_settings(self) -> PromptSettings:
        """The scans' settings these amount to (fusion, proposals), for the shared checks."""
        return PromptSettings(
            pointcloud_source="fusion",
            fusion_voxel_size=self.fusion_voxel_size,
            fusion_stride=self.fusion_stride,
            instance_source=self.instance_source,
            proposals_dir=self.proposals_dir,
            n_frames=self.n_frames,
            image_resolution=self.image_resolution,
            bev_long_side=self.bev_long_side,
            bev_marker_size=self.bev_marker_size,
            frame_marker_size=self.frame_marker_size,
            min_visible_points=self.min_visible_points,
            seed=self.seed,
        )


def prepare_capture(
    capture_dir: str | Path,
    out_dir: str | Path,
    settings: CaptureSettings = CaptureSettings(),
    stages: tuple[str, ...] = STAGES,
) -> SceneResult:
    """Build the requested ``stages`` (``ops.prompts.driver.STAGES``) of one capture under ``out_dir``; the
    folder's lock is held throughout, as for a scene."""
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}")
    with folder_lock(out_dir), open_capture(capture_dir) as raw:
        return _prepare(raw, SceneLayout(Path(out_dir)), settings, stages)


def _prepare(raw: Capture, layout: SceneLayout, settings: CaptureSettings, stages: tuple[str, ...]) -> SceneResult:
    result = SceneResult(raw.scene_id)
    prompts = settings.prompt_settings()
    if "point_cloud" in stages:
        with timed_stage(result, "point_cloud"):
            result.stages["point_cloud"] = _write_aligned_pointcloud(raw, layout, settings)
    capture = raw.with_alignment(_load_alignment(layout, raw.scene_id))
    coord, color = _load(layout, raw.scene_id, "point_cloud", layout.coord, layout.color)

    if "instance_masks" in stages:
        with timed_stage(result, "instance_masks"):
            instances = _build_instances(capture, coord, settings)
            write_instances(layout.dir, instances, settings.instance_source)
            result.stages["instance_masks"] = {
                "num_objects": instances.num_objects,
                "labelled_points": int((instances.instance >= 0).sum()),
                "source": settings.instance_source,
            }
    instance, boxes = _load(layout, raw.scene_id, "instance_masks", layout.instance, layout.boxes)

    if "bev_image" in stages:
        write_bev_stage(layout.dir, coord, color, boxes, prompts, result)
    if "marked_frames" in stages:
        write_marked_frames_stage(layout.dir, capture, coord, instance, prompts, result)
    return result


def _write_aligned_pointcloud(raw: Capture, layout: SceneLayout, settings: CaptureSettings) -> dict:
    """Fuse the frames in the capture's world, estimate the floor alignment, save the aligned cloud (sorted by
    xyz) and ``alignment.json``; returns the stage's metadata."""
    valid = np.flatnonzero(raw.valid_frame_mask())[:: settings.fusion_stride]
    if len(valid) == 0:
        raise SceneInputError(raw.scene_id, raw.frames_path, "no frame has a valid (finite) pose")
    frames = (frame for index in valid.tolist() for frame in raw.read_frames([index]))
    coord, color = pointcloud_from_fusion(
        frames,
        raw.depth_intrinsics,
        raw.depth_shift,
        voxel_size=settings.fusion_voxel_size,
        depth_trunc=settings.fusion_depth_trunc,
    )
    alignment = estimate_floor_alignment(coord, raw.poses()[valid], seed=settings.seed)
    a = alignment.aligned_from_world
    coord = (coord.astype(np.float64) @ a[:3, :3].T + a[:3, 3]).astype(np.float32)
    order = np.lexsort((color[:, 2], color[:, 1], color[:, 0], coord[:, 2], coord[:, 1], coord[:, 0]))
    coord, color = np.ascontiguousarray(coord[order]), np.ascontiguousarray(color[order])
    with staging_dir(layout.pointcloud) as tmp:
        write_npy(tmp / layout.coord.name, coord)
        write_npy(tmp / layout.color.name, color)
        write_json(tmp / layout.alignment.name, {"layout": raw.layout, **alignment.to_json()})
    return {
        "num_points": len(coord),
        "source": f"fusion ({raw.layout})",
        "bounds": [b.tolist() for b in bounds(coord)],
        "alignment": alignment.method,
        "fused_frames": len(valid),
    }


def _build_instances(capture: Capture, coord: np.ndarray, settings: CaptureSettings) -> Instances:
    if settings.instance_source == "proposals":
        folder = Path(settings.proposals_dir)
        for suffix in (".pt", ".pth", ".npz", ".npy", ".txt"):
            path = folder / f"{capture.scene_id}{suffix}"
            if path.is_file():
                return instances_from_proposals(path, coord, scene_id=capture.scene_id)
        raise SceneInputError(capture.scene_id, folder, "no proposal file (.pt/.pth/.npz/.npy/.txt) found")
    return instances_from_clusters(coord, seed=settings.seed, eps=settings.cluster_eps)


def load_alignment(layout: SceneLayout) -> dict:
    """``pointcloud/alignment.json`` of a prepared capture."""
    return json.loads(layout.alignment.read_text())


def _load_alignment(layout: SceneLayout, name: str) -> np.ndarray:
    try:
        return np.asarray(load_alignment(layout)["aligned_from_world"], dtype=np.float64)
    except FileNotFoundError as exc:
        raise SceneInputError(name, exc.filename, "point_cloud has not been materialised yet") from exc


def _load(layout: SceneLayout, name: str, stage: str, *paths: Path) -> tuple[np.ndarray, ...]:
    try:
        return tuple(np.load(path, allow_pickle=False) for path in paths)
    except FileNotFoundError as exc:
        raise SceneInputError(name, exc.filename, f"{stage} has not been materialised yet") from exc
