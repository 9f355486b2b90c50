"""Captures: posed RGB-D video with no ScanNet annotation (a phone or a depth camera), turned into GPT4Scene's BEV
and marked frames by the same ops as the scans.

``readers`` opens the three layouts (ScanNet's exported folders, a Nerfstudio ``transforms.json`` with depth, a
``.sens``) and converts their poses to OpenCV camera axes in the capture's own world frame; ``alignment`` estimates
the floor plane and up axis from the fused cloud and rotates the capture to +Z up, floor at z = 0;
``pipeline.prepare_capture`` runs TSDF fusion, alignment, proposals, BEV and marked frames.
"""

from ops.capture.alignment import FloorAlignment, estimate_floor_alignment
from ops.capture.pipeline import CaptureSettings, prepare_capture
from ops.capture.readers import CAPTURE_LAYOUTS, Capture, check_capture_dir, open_capture

__all__ = [
    "CAPTURE_LAYOUTS",
    "Capture",
    "CaptureSettings",
    "FloorAlignment",
    "check_capture_dir",
    "estimate_floor_alignment",
    "open_capture",
    "prepare_capture",
]
