"""Captures (ops.capture): posed RGB-D video without annotation, in each layout, through the capture pipeline.

The synthetic generator renders one room per layout in an arbitrary world frame (a random rigid transform: any up
axis) and keeps its truth here; the pipeline sees only the frames and poses. Measured: BEV marker error against the
true top-down centres, proposal recall at IoU 0.25, and the BEV of the same room under two world frames.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ops.capture import CaptureSettings, check_capture_dir, open_capture, prepare_capture
from ops.capture.alignment import estimate_floor_alignment, rotation_between
from ops.capture.readers import opengl_to_opencv
from ops.core.errors import SceneInputError
from ops.core.layout import SceneLayout
from ops.prompts.bev import apply_world_to_pixel
from ops.prompts.instances import box_iou_3d
from ops.synthetic.capture import CAPTURE_LAYOUTS, generate_capture, random_rigid_transform

SEED = 3
SETTINGS = CaptureSettings(fusion_voxel_size=0.03, fusion_stride=3, n_frames=8, image_resolution=256)
MIN_OBJECT_SIDE = 0.3  # metres: objects whose longest side is at least this must get a proposal
IOU = 0.25


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    """Each layout, plus the exported layout again under another world frame: name → (truth, artifact layout)."""
    root = tmp_path_factory.mktemp("captures")
    out = {}
    worlds = {layout: None for layout in CAPTURE_LAYOUTS}
    worlds["turned"] = random_rigid_transform(np.random.default_rng(99))
    for name, world in worlds.items():
        layout = name if name in CAPTURE_LAYOUTS else "exported"
        truth = generate_capture(root / "raw", f"room_{name}", SEED, layout=layout, world_from_truth=world)
        artifacts = SceneLayout(root / "out" / f"room_{name}")
        result = prepare_capture(truth.capture_dir, artifacts.dir, SETTINGS)
        assert all(check["passed"] for check in result.checks.values()), result.checks
        out[name] = (truth, artifacts)
    return out


def _truth_in_capture_frame(truth, artifacts: SceneLayout) -> tuple[np.ndarray, np.ndarray]:
    """(truth boxes [K,6] of the furniture in the pipeline's aligned frame, aligned_from_truth 4x4)."""
    alignment = np.asarray(json.loads(artifacts.alignment.read_text())["aligned_from_world"])
    m = alignment @ truth.world_from_truth
    boxes = []
    for obj in truth.furniture:
        lows, highs = obj.aabb_min, obj.aabb_max
        corners = np.array(
            [[x, y, z] for x in (lows[0], highs[0]) for y in (lows[1], highs[1]) for z in (lows[2], highs[2])]
        )
        moved = corners @ m[:3, :3].T + m[:3, 3]
        low, high = moved.min(0), moved.max(0)
        boxes.append(np.concatenate([(low + high) / 2, high - low]))
    return np.array(boxes), m


def _matches(truth, artifacts: SceneLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth boxes, best proposal per truth object, its IoU)."""
    boxes, _ = _truth_in_capture_frame(truth, artifacts)
    proposals = np.load(artifacts.boxes)
    iou = box_iou_3d(boxes[:, None], proposals[None])
    best = iou.argmax(axis=1)
    return boxes, best, iou[np.arange(len(boxes)), best]


@pytest.mark.parametrize("name", CAPTURE_LAYOUTS)
def test_the_floor_is_found_and_turned_to_z_up(captures, name):
    truth, artifacts = captures[name]
    _, m = _truth_in_capture_frame(truth, artifacts)
    assert m[2, 2] > np.cos(np.deg2rad(1.0))  # the truth's +Z is the capture's +Z within a degree
    assert abs(m[2, 3]) < 0.03  # the floor at z = 0 within 3 cm
    yaw = np.rad2deg(np.arctan2(m[1, 0], m[0, 0]))
    assert min(abs(yaw - k) for k in (-180, -90, 0, 90, 180)) < 1.5  # walls on the X and Y axes
    assert json.loads(artifacts.alignment.read_text())["method"] == "ransac_floor"


@pytest.mark.parametrize("name", CAPTURE_LAYOUTS)
def test_bev_markers_land_on_the_true_top_down_centres(captures, name):
    truth, artifacts = captures[name]
    boxes, best, iou = _matches(truth, artifacts)
    bev = json.loads(artifacts.bev_meta.read_text())
    true_pixels = apply_world_to_pixel(np.asarray(bev["world_to_pixel"]), boxes[:, :2])
    found = iou >= IOU
    errors = [np.linalg.norm(true_pixels[k] - bev["markers"][str(best[k])]) for k in np.flatnonzero(found)]
    print(f"{name}: marker error px median {np.median(errors):.1f}, max {np.max(errors):.1f} ({len(errors)} objects)")
    assert np.median(errors) <= 5.0


@pytest.mark.parametrize("name", CAPTURE_LAYOUTS)
def test_every_object_above_the_minimum_size_gets_a_proposal(captures, name):
    truth, artifacts = captures[name]
    _, _, iou = _matches(truth, artifacts)
    large = np.array([obj.size.max() >= MIN_OBJECT_SIDE for obj in truth.furniture])
    recall = float((iou[large] >= IOU).mean())
    print(f"{name}: recall@{IOU} {recall:.2f} of {large.sum()} objects >= {MIN_OBJECT_SIDE} m")
    assert recall >= 0.7


def test_a_capture_in_another_world_frame_gives_the_same_bev_up_to_an_in_plane_rotation(captures):
    (_, first), (_, second) = captures["exported"], captures["turned"]
    image_a = _foreground(first)
    image_b = _foreground(second)
    scores = []
    for k in range(4):
        turned = np.rot90(image_a, k)
        h, w = min(turned.shape[0], image_b.shape[0]), min(turned.shape[1], image_b.shape[1])
        a, b = turned[:h, :w], image_b[:h, :w]
        scores.append((a & b).sum() / max((a | b).sum(), 1))
    k = int(np.argmax(scores))
    print(f"BEV foreground IoU after {k} quarter turns: {scores[k]:.3f}")
    assert scores[k] > 0.9
    markers_a = np.array(list(json.loads(first.bev_meta.read_text())["markers"].values()))
    markers_b = np.array(list(json.loads(second.bev_meta.read_text())["markers"].values()))
    moved, (height, width) = markers_a, image_a.shape
    for _ in range(k):  # np.rot90 turns counter-clockwise: (u, v) -> (v, width - 1 - u)
        moved = np.stack([moved[:, 1], (width - 1) - moved[:, 0]], axis=1)
        height, width = width, height
    nearest = np.linalg.norm(moved[:, None] - markers_b[None], axis=2).min(axis=1)
    print(f"markers: median distance to the other capture's nearest marker {np.median(nearest):.1f} px")
    assert np.median(nearest) <= 5.0


def _foreground(artifacts: SceneLayout) -> np.ndarray:
    image = cv2.imread(str(artifacts.bev_image), cv2.IMREAD_COLOR_RGB)
    return ~np.all(image >= 250, axis=2)


def test_opengl_poses_become_opencv_poses():
    gl = np.eye(4)
    gl[:3, 3] = [1.0, 2.0, 3.0]
    cv = opengl_to_opencv(gl)
    assert np.allclose(cv[:3, 3], [1, 2, 3])
    assert np.allclose(cv[:3, 1], [0, -1, 0]) and np.allclose(cv[:3, 2], [0, 0, -1])  # y down, z forward (= -z back)


def test_rotation_between_handles_opposite_vectors():
    for a in ([0, 0, 1.0], [0, 0, -1.0], [0.3, -0.2, 0.9]):
        r = rotation_between(np.array(a), np.array([0, 0, 1.0]))
        assert np.allclose(r @ (np.array(a) / np.linalg.norm(a)), [0, 0, 1]) and np.isclose(np.linalg.det(r), 1)


def test_without_a_floor_plane_the_cameras_up_is_used():
    rng = np.random.default_rng(0)
    blob = rng.normal(size=(2000, 3)) * 0.3
    pose = np.eye(4)
    pose[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]  # OpenCV camera looking along +Y, its up (-y) = +Z
    alignment = estimate_floor_alignment(blob, pose[None], max_planes=0)
    assert alignment.method == "camera_up" and np.allclose(alignment.up, [0, 0, 1])


def test_bad_capture_folders_are_refused(tmp_path):
    assert "invalid capture name" in check_capture_dir(tmp_path / "bad name")[0]
    (tmp_path / "empty").mkdir()
    assert "no transforms.json" in check_capture_dir(tmp_path / "empty")[0]
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    frame = {"file_path": "c.jpg", "depth_file_path": "../../etc/passwd", "transform_matrix": np.eye(4).tolist()}
    camera = {"fl_x": 100, "fl_y": 100, "cx": 50, "cy": 40, "w": 100, "h": 80}
    (hostile / "transforms.json").write_text(json.dumps({**camera, "frames": [frame]}))
    with pytest.raises(SceneInputError, match="leaves the capture"):
        open_capture(hostile).read_frames([0])
    (hostile / "transforms.json").write_text(json.dumps({**camera, "k1": 0.1, "frames": [frame]}))
    with pytest.raises(SceneInputError, match="undistort"):
        open_capture(hostile)


def test_sensor_registers_captures_and_the_assets_build_them_over_ray(tmp_path_factory):
    import dagster as dg

    from assets.captures import capture_key, capture_prompts
    from assets.partitions import capture_partitions, partition_range_tags
    from pipelines.captures import capture_discovery_sensor
    from resources.ray import SceneRay
    from resources.storage import StorageRoot

    tmp_path = tmp_path_factory.mktemp("cr")  # short: Ray's socket paths are limited to 107 bytes
    storage = StorageRoot(root=str(tmp_path))
    generate_capture(storage.captures_dir, "kitchen_walk", SEED, layout="nerfstudio", n_frames=24)
    (storage.captures_dir / "not a name").mkdir()
    instance = dg.DagsterInstance.ephemeral()
    result = capture_discovery_sensor(dg.build_sensor_context(instance=instance, resources={"storage": storage}))
    assert [request.partition_key for request in result.run_requests] == ["kitchen_walk"]
    assert result.dynamic_partitions_requests[0].partition_keys == ["kitchen_walk"]
    instance.add_dynamic_partitions(capture_partitions.name, ["kitchen_walk"])
    job = dg.Definitions(
        assets=[capture_prompts],
        resources={"storage": storage, "ray_cluster": SceneRay(temp_dir=str(tmp_path / "ray"))},
    ).resolve_implicit_global_asset_job_def()
    config = {"fusion_voxel_size": 0.04, "fusion_stride": 3, "n_frames": 8, "image_resolution": 256}
    run = job.execute_in_process(
        instance=instance,
        run_config={"ops": {"capture_prompts": {"config": config}}},
        tags=partition_range_tags("kitchen_walk", "kitchen_walk"),
    )
    assert run.success
    bev = instance.get_latest_materialization_event(capture_key("bev_image")).asset_materialization
    assert bev.partition == "kitchen_walk" and "preview" in bev.metadata
    assert storage.capture("kitchen_walk").bev_image.is_file() and storage.capture("kitchen_walk").alignment.is_file()
