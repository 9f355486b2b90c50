"""Synthetic ScanNet scenes: procedural rooms with furniture, rendered RGB-D, and benchmark annotations.

``generate_dataset`` writes ``out_dir/scans/<scene_id>/`` (ScanNet's file formats) and ``out_dir/annotations/``
(ScanRefer, ScanQA, SQA3D, Multi3DRefer, split lists, label TSV); ``generate_scene`` writes one scene. Both are
deterministic for a seed (byte-identical files) and return the ground truth they were built from.

Speed (2 shared CPU cores, open3d-cpu 0.19): one scene of 300 frames at ScanNet sizes (colour 1296x968 cast at
half resolution and resized, depth 640x480) takes about 24 s wall / 42 s CPU, 0.5 GB peak memory, ~80k mesh
vertices, a 67 MB ``.sens``; ray casting is ~70% of it. 160 frames at 648x484 / 320x240 take about 9.5 s;
30 frames at 320x240 / 160x120 about 1 s.
"""

from __future__ import annotations

from ops.synthetic.generate import generate_dataset, generate_scene, scene_seed
from ops.synthetic.room import ROOM_TYPES
from ops.synthetic.truth import DatasetTruth, ObjectTruth, SceneTruth

__all__ = [
    "ROOM_TYPES",
    "DatasetTruth",
    "ObjectTruth",
    "SceneTruth",
    "generate_dataset",
    "generate_scene",
    "scene_seed",
]
