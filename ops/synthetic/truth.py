"""What the generator made, in the aligned frame: the ground truth tests and annotations are built from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class ObjectTruth:
    """One aggregation object in the aligned frame (box from its mesh vertices)."""

    object_id: int
    label: str  # raw ScanNet category, as in the aggregation
    color: str  # palette name
    aabb_min: np.ndarray
    aabb_max: np.ndarray
    front: np.ndarray | None = None  # unit xy direction the object faces; None for floor and walls
    support_id: int | None = None  # object id of the object it stands on
    wall_hung: bool = False

    @property
    def name(self) -> str:
        """``object_name`` as the benchmarks write it (spaces as underscores)."""
        return self.label.replace(" ", "_")

    @property
    def center(self) -> np.ndarray:
        return (self.aabb_min + self.aabb_max) / 2

    @property
    def size(self) -> np.ndarray:
        return self.aabb_max - self.aabb_min

    @property
    def is_structure(self) -> bool:
        return self.label in ("wall", "floor")


@dataclass
class SceneTruth:
    """What was generated for one scene, in the aligned frame."""

    scene_id: str
    scene_dir: Path
    seed: int
    scene_type: str
    layout: str
    room_size: tuple[float, float, float]  # width (x), depth (y), height (m)
    axis_alignment: np.ndarray  # 4x4, exactly as written to <scene>.txt
    objects: list[ObjectTruth]  # sorted by object_id
    poses: np.ndarray  # float64 [N,4,4] aligned camera-to-world, true poses (also for invalid frames)
    valid: np.ndarray  # bool [N]; False where the stored pose is -inf
    color_size: tuple[int, int]
    depth_size: tuple[int, int]
    color_intrinsics: np.ndarray  # 3x3
    depth_intrinsics: np.ndarray  # 3x3
    vertex_object_ids: np.ndarray  # int32 [V], object id of each PLY vertex
    num_faces: int
    num_segments: int

    @property
    def num_frames(self) -> int:
        return len(self.poses)

    def object(self, object_id: int) -> ObjectTruth:
        return self.objects[object_id]


@dataclass
class DatasetTruth:
    """A generated dataset: its scenes, split and annotation files."""

    out_dir: Path
    scenes: list[SceneTruth]
    train_ids: list[str]
    val_ids: list[str]
    annotation_files: dict[str, Path] = field(default_factory=dict)

    @property
    def scans_dir(self) -> Path:
        return self.out_dir / "scans"
