"""Frame sampling, projection, visibility-tested frame markers, marked frames and the zero-shot composite.

The camera of these tests sits at the origin looking along world +Y with world +Z up in the image, so a world
point (x, y, z) projects by hand to u = fx * x / y + cx, v = -fy * z / y + cy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from ops.core.atomic import canonical_json
from ops.prompts.frames import (
    FrameCamera,
    ObjectPoints,
    composite_grid,
    downscale,
    mark_frame,
    project_points,
    resize_frame,
    resized_geometry,
    sample_frame_indices,
    scale_intrinsics,
    visible_markers,
    visible_object_ids,
)
from ops.prompts.markers import marker_color
from ops.prompts.writer import write_frames

WIDTH, HEIGHT = 640, 480
K = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])
# the same camera in the saved 320 x 240 image
K_HALF = np.array([[250.0, 0.0, 159.5], [0.0, 250.0, 119.5], [0.0, 0.0, 1.0]])
POSE = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])


def _patch(x_range, y, z_range, step=0.02) -> np.ndarray:
    """A flat grid of points facing the camera at distance ``y``."""
    xs, zs = np.meshgrid(np.arange(x_range[0], x_range[1] + 1e-9, step), np.arange(z_range[0], z_range[1] + 1e-9, step))
    return np.c_[xs.ravel(), np.full(xs.size, y), zs.ravel()]


def _scene():
    """Objects: 0 in view at 3 m; 1 behind the wall (5 m); 2 beside the frustum; 3 behind the camera; 4 over a
    depth hole; 5 visible but with only 4 points. The wall is the plane y = 4."""
    objects = [
        _patch((0.3, 0.7), 3.0, (0.0, 0.4)),
        _patch((-0.5, -0.1), 5.0, (0.0, 0.4)),
        _patch((9.8, 10.2), 3.0, (0.0, 0.4)),
        _patch((0.3, 0.7), -3.0, (0.0, 0.4)),
        _patch((-0.9, -0.6), 2.0, (-0.6, -0.3)),
        _patch((-0.3, -0.28), 3.0, (0.5, 0.52)),
    ]
    coord = np.concatenate(objects)
    instance = np.concatenate([np.full(len(o), k, np.int32) for k, o in enumerate(objects)])
    depth = np.full((HEIGHT, WIDTH), 4000, np.uint16)  # the wall, 4 m away everywhere
    depth[170:242, 368:438] = 3000  # object 0 covers u 369.5..436.2, v 172.8..239.5 (by hand)
    depth[312:392, 92:172] = 0  # no measurement where object 4 is (u 94.5..169.5, v 314.5..389.5)
    depth[140:160, 260:280] = 3000  # object 5 (u 269.5..272.8, v 152.8..156.2)
    return coord, instance, depth


def test_sampling_is_uniform_over_valid_frames():
    valid = [0, 1, 2, 4, 5, 6, 7, 9, 10, 11]  # frames 3 and 8 have invalid poses
    # N = 10 valid frames, n = 4: positions floor(i * 10 / 4) = 0, 2, 5, 7
    assert sample_frame_indices(valid, 4) == [0, 2, 6, 9]
    assert sample_frame_indices(np.array(valid), 10) == valid
    assert sample_frame_indices([5, 2, 7], 8) == [2, 5, 7]  # fewer valid frames than n: all of them
    assert sample_frame_indices(np.arange(1000), 32)[:3] == [0, 31, 62]
    with pytest.raises(ValueError):
        sample_frame_indices(valid, 0)


def test_project_points_by_hand():
    points = np.array([[0.0, 2.0, 0.0], [1.0, 2.0, 0.5], [0.0, -2.0, 0.0], [5.0, 1.0, 0.0]])
    uv, z, inside = project_points(points, POSE, K, WIDTH, HEIGHT)
    np.testing.assert_allclose(uv[:2], [[319.5, 239.5], [569.5, 114.5]])
    np.testing.assert_allclose(z, [2.0, 2.0, -2.0, 1.0])
    np.testing.assert_array_equal(inside, [True, True, False, False])
    # the same with the camera moved: translation is undone before rotating
    moved = POSE.copy()
    moved[:3, 3] = [1.0, 1.0, 0.5]
    uv_moved, z_moved, _ = project_points(points[1:2] + [1.0, 1.0, 0.5], moved, K, WIDTH, HEIGHT)
    np.testing.assert_allclose(uv_moved, uv[1:2])
    np.testing.assert_allclose(z_moved, [2.0])


def test_visible_markers_follow_visibility_rules():
    coord, instance, depth = _scene()
    objects, camera = ObjectPoints(coord, instance), FrameCamera(POSE, K, depth, 1000.0, (320, 240), K_HALF)
    markers = visible_markers(objects, camera, min_visible_points=10)
    assert sorted(markers) == [0]  # 1 behind the wall, 2 and 3 outside the frustum, 4 unmeasured, 5 too small
    # centroid of object 0 (x 0.5, z 0.2 at y 3) in the 320 x 240 image, by hand:
    # u = 250 * 0.5 / 3 + 159.5 = 201.17, v = -250 * 0.2 / 3 + 119.5 = 102.83
    u, v = markers[0]["uv"]
    assert np.hypot(u - 201.17, v - 102.83) < 2.0
    assert markers[0]["visible_points"] == (instance == 0).sum()

    with_small = visible_markers(objects, camera, min_visible_points=4)
    assert sorted(with_small) == [0, 5] and with_small[5]["visible_points"] == 4
    assert visible_object_ids(objects, camera, 10) == {0} and visible_object_ids(objects, camera, 4) == {0, 5}


def test_depth_tolerance_and_a_partly_hidden_object():
    coord, instance, depth = _scene()
    objects, camera = ObjectPoints(coord, instance), FrameCamera(POSE, K, depth, 1000.0, (320, 240), K_HALF)
    # the wall at 4 m hides object 1 at 5 m unless the tolerance is over a metre
    lenient = visible_markers(objects, camera, depth_tolerance=1.1)
    assert 1 in lenient and 1 in visible_object_ids(objects, camera, depth_tolerance=1.1)
    # depth 0 is "unknown", never "far": object 4 stays unmarked whatever the tolerance
    assert 4 not in visible_markers(objects, camera, depth_tolerance=50)
    # hide the left half of object 0 (x < 0.5 -> u < 402.8) behind something at 2 m: the marker moves right
    occluded = depth.copy()
    occluded[170:242, 368:402] = 2000
    markers = visible_markers(objects, FrameCamera(POSE, K, occluded, 1000.0, (320, 240), K_HALF))
    visible = (instance == 0) & (coord[:, 0] > 0.49)  # x = 0.5 projects to u = 402.8, pixel 403
    expected_u = 250 * coord[visible, 0].mean() / 3.0 + 159.5
    assert markers[0]["visible_points"] == visible.sum()
    assert markers[0]["uv"][0] == pytest.approx(expected_u, abs=0.01)


def test_points_outside_the_saved_image_do_not_count():
    coord, instance, depth = _scene()
    objects = ObjectPoints(coord, instance)
    # a saved image only 200 px wide: object 0 spans u 184.5..217.8, so only x < 0.48 (u < 199.5) is inside
    markers = visible_markers(objects, FrameCamera(POSE, K, depth, 1000.0, (200, 240), K_HALF))
    inside = (instance == 0) & (coord[:, 0] < 0.47)
    assert markers[0]["visible_points"] == inside.sum()
    # centroid by hand: mean x = (0.30 + 0.46) / 2 = 0.38 -> u = 250 * 0.38 / 3 + 159.5 = 191.17
    assert markers[0]["uv"][0] == pytest.approx(191.17, abs=0.05)


def test_invalid_pose_gives_no_markers():
    coord, instance, depth = _scene()
    objects = ObjectPoints(coord, instance)
    invalid = FrameCamera(np.full((4, 4), -np.inf), K, depth, 1000.0, (320, 240), K_HALF)
    assert visible_markers(objects, invalid) == {} and visible_object_ids(objects, invalid) == set()


def test_resize_frame_scales_intrinsics_consistently():
    rgb = np.zeros((968, 1296, 3), np.uint8)
    k = np.array([[1170.0, 0.0, 647.5], [0.0, 1170.0, 483.5], [0.0, 0.0, 1.0]])
    small, k_small = resize_frame(rgb, k, image_resolution=512)
    assert small.shape == (382, 512, 3)  # 968 * 512 / 1296 = 382.4, truncated
    point = np.array([[0.4, 3.0, 0.3]])
    uv_big, _, _ = project_points(point, POSE, k, 1296, 968)
    uv_small, _, _ = project_points(point, POSE, k_small, 512, 382)
    # pixel-centre convention: (u + 0.5) * scale - 0.5
    np.testing.assert_allclose(uv_small[0, 0], (uv_big[0, 0] + 0.5) * 512 / 1296 - 0.5)
    np.testing.assert_allclose(uv_small[0, 1], (uv_big[0, 1] + 0.5) * 382 / 968 - 0.5)
    unchanged, k_same = resize_frame(np.zeros((240, 320, 3), np.uint8), K_HALF)
    assert unchanged.shape == (240, 320, 3) and np.array_equal(k_same, K_HALF)
    np.testing.assert_allclose(scale_intrinsics(K, 0.5, 0.5), K_HALF)


def test_marked_frame_is_deterministic_and_drawn_at_the_marker():
    coord, instance, depth = _scene()
    objects = ObjectPoints(coord, instance)
    rgb = np.full((240, 320, 3), 90, np.uint8)
    outputs = []
    for _ in range(2):
        markers = visible_markers(objects, FrameCamera(POSE, K, depth, 1000.0, (320, 240), K_HALF))
        marked = mark_frame(rgb, markers, size=24)
        ok, jpeg = cv2.imencode(".jpg", marked[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        outputs.append((jpeg.tobytes(), canonical_json({"markers": markers})))
    assert outputs[0] == outputs[1]
    u, v = (int(round(c)) for c in markers[0]["uv"])
    assert tuple(marked[v, u + 9]) == marker_color(0)  # inside the circle, beside the digit
    assert tuple(marked[v, u + 20]) == (90, 90, 90)


def test_composite_grid_layout():
    images = [np.full((10, 20, 3), 10 * (n + 1), np.uint8) for n in range(7)]
    grid = composite_grid(images, rows=2, cols=4, gap=2)
    assert grid.shape == (22, 86, 3)
    assert grid[0, 0, 0] == 10 and grid[0, 22, 0] == 20 and grid[12, 0, 0] == 50 and grid[12, 44, 0] == 70
    assert grid[0, 20, 0] == 255 and grid[15, 70, 0] == 255  # gap and the empty eighth cell are white
    with pytest.raises(ValueError):
        composite_grid(images * 2)


def _reference_markers(coord, instance, pose, k_depth, depth, shift, size, k_image, min_points=10, tolerance=0.1):
    """The marker rules of ops.prompts.frames written out point by point with ``project_points``, no culling."""
    width, height = size
    uv_depth, z, in_depth = project_points(coord, pose, k_depth, depth.shape[1], depth.shape[0])
    uv_image, _, in_image = project_points(coord, pose, k_image, width, height)
    cols, rows = (np.floor(uv_depth[in_depth] + 0.5).astype(int)).T
    measured = np.zeros(len(coord))
    measured[in_depth] = depth[rows, cols] / shift
    seen = in_depth & in_image & (instance >= 0) & (measured > 0) & (z <= measured + tolerance)
    markers = {}
    for object_id in np.unique(instance[seen]).tolist():
        mine = seen & (instance == object_id)
        if mine.sum() >= min_points:
            markers[object_id] = {"uv": uv_image[mine].mean(0), "visible_points": int(mine.sum())}
    return markers


# skewed intrinsics whose saved image is not a plain rescale of the depth image: the depth-to-image map is affine
K_SKEWED = np.array([[510.0, 4.0, 322.3], [0.0, 495.0, 236.8], [0.0, 0.0, 1.0]])
K_SKEWED_IMAGE = np.array([[262.0, 1.5, 157.9], [0.0, 251.0, 121.4], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize("k_depth, k_image", [(K, K_HALF), (K_SKEWED, K_SKEWED_IMAGE)], ids=["plain", "skewed"])
def test_culled_objects_give_the_same_markers_as_projecting_every_point(k_depth, k_image):
    """Random boxes of points around random cameras: the per-object frustum culling of ``ObjectPoints`` and the
    OpenCV projection never change a marker against a plain point-by-point projection (objects half in view,
    behind, straddling the camera plane)."""
    rng = np.random.default_rng(3)
    centres = rng.uniform([-4, -4, -1], [4, 4, 2], (40, 3))
    coord = np.concatenate([c + rng.uniform(-0.4, 0.4, (300, 3)) for c in centres])
    instance = np.repeat(np.arange(40), 300).astype(np.int32)
    instance[rng.random(len(instance)) < 0.1] = -1
    objects = ObjectPoints(coord, instance)
    depth = rng.integers(0, 9000, (HEIGHT, WIDTH)).astype(np.uint16)
    culled_somewhere = False
    for _ in range(12):
        yaw = rng.uniform(0, 2 * np.pi)
        pose = POSE.copy()
        turn = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
        pose[:3, :3] = turn @ POSE[:3, :3]
        pose[:3, 3] = rng.uniform(-1, 1, 3)
        culled_somewhere |= len(objects.in_view(pose, k_image, 320, 240)) < 40
        camera = FrameCamera(pose, k_depth, depth, 1000.0, (320, 240), k_image)
        got = visible_markers(objects, camera)
        expected = _reference_markers(coord, instance, pose, k_depth, depth, 1000.0, (320, 240), k_image)
        assert sorted(got) == sorted(expected)
        for object_id, marker in expected.items():
            assert got[object_id]["visible_points"] == marker["visible_points"]
            np.testing.assert_allclose(got[object_id]["uv"], marker["uv"], atol=0.006)
        # the check's sampled shortcut finds the same objects, whether the sample decides (10) or cannot (150)
        everything = visible_markers(objects, camera, min_visible_points=1)
        for threshold in (10, 40, 150):
            wanted = {key for key, marker in everything.items() if marker["visible_points"] >= threshold}
            assert visible_object_ids(objects, camera, threshold) == wanted
    assert culled_somewhere


@dataclass
class Frame:
    index: int
    rgb: np.ndarray
    depth: np.ndarray
    pose: np.ndarray


def test_write_frames_files_and_json(tmp_path):
    coord, instance, depth = _scene()
    rgb = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    frames = [Frame(12, rgb, depth, POSE), Frame(40, rgb, np.zeros_like(depth), POSE)]
    metas = [
        write_frames(tmp_path / name, frames, coord, instance, K, K, 1000.0, image_resolution=512) for name in "ab"
    ]
    names = sorted(p.name for p in (tmp_path / "a" / "frames").iterdir())
    assert names == ["frame_00.jpg", "frame_01.jpg", "frames.json", "raw_00.jpg", "raw_01.jpg"]
    for name in names:
        assert (tmp_path / "a" / "frames" / name).read_bytes() == (tmp_path / "b" / "frames" / name).read_bytes()
    stored = json.loads((tmp_path / "a" / "frames" / "frames.json").read_text())
    first, second = stored["frames"]
    assert first["file"] == "frame_00.jpg" and first["source_index"] == 12 and second["source_index"] == 40
    np.testing.assert_allclose(first["pose"], POSE)
    # saved at 512 x 384 (scale 0.8): fx = 400, cx = (319.5 + 0.5) * 0.8 - 0.5 = 255.5, cy = 191.5
    np.testing.assert_allclose(first["intrinsics"], [[400, 0, 255.5], [0, 400, 191.5], [0, 0, 1]])
    # object 0 by hand in the saved image: u = 400 * 0.5 / 3 + 255.5 = 322.17, v = -400 * 0.2 / 3 + 191.5 = 164.83
    assert sorted(first["markers"]) == ["0"]
    u, v = first["markers"]["0"]["uv"]
    assert np.hypot(u - 322.17, v - 164.83) < 2.0
    assert second["markers"] == {}  # no depth measured: nothing is visible
    assert metas[0]["frames"][0]["markers"][0]["uv"] == [u, v]
    marked = cv2.imread(str(tmp_path / "a" / "frames" / "frame_00.jpg"))
    raw = cv2.imread(str(tmp_path / "a" / "frames" / "raw_00.jpg"))
    assert marked.shape == raw.shape == (384, 512, 3)
    assert np.abs(marked.astype(int) - raw.astype(int)).max() > 100  # the marker is drawn on frame_00 only
    assert np.abs(raw.astype(int) - 90).max() <= 2


def test_write_frames_leaves_a_frame_that_needs_no_resize_intact(tmp_path):
    """Frames are marked in place after resizing; a frame already small enough must be copied first."""
    coord, instance, depth = _scene()
    rgb = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    meta = write_frames(tmp_path, [Frame(3, rgb, depth, POSE)], coord, instance, K, K, 1000.0, image_resolution=1024)
    assert sorted(meta["frames"][0]["markers"]) == [0]
    assert (rgb == 90).all()  # the caller's image has no marker drawn on it
    raw = cv2.imread(str(tmp_path / "frames" / "raw_00.jpg"))
    marked = cv2.imread(str(tmp_path / "frames" / "frame_00.jpg"))
    assert raw.shape == marked.shape == (HEIGHT, WIDTH, 3)
    assert np.abs(raw.astype(int) - 90).max() <= 2 and np.abs(marked.astype(int) - 90).max() > 100


def test_resized_geometry_is_what_resize_frame_gives():
    k = np.array([[1170.0, 0.0, 647.5], [0.0, 1170.0, 483.5], [0.0, 0.0, 1.0]])
    for shape, resolution in (((968, 1296), 512), ((1296, 968), 512), ((240, 320), 512), ((101, 999), 300)):
        image, k_image = resize_frame(np.zeros((*shape, 3), np.uint8), k, resolution)
        size, k_geometry = resized_geometry(shape[1], shape[0], k, resolution)
        assert size == (image.shape[1], image.shape[0]) and np.array_equal(k_geometry, k_image)


def test_downscale_without_alignment_drops_an_odd_edge_only():
    rng = np.random.default_rng(3)
    smooth = cv2.resize(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), (1023, 1025), interpolation=cv2.INTER_CUBIC)
    aligned = downscale(smooth, (383, 384))
    preview = downscale(smooth, (383, 384), keep_alignment=False)
    assert aligned.shape == preview.shape == (384, 383, 3)
    assert np.abs(aligned.astype(int) - preview.astype(int)).mean() < 2.0  # one dropped row/column in 1,000
    assert downscale(smooth, (1023, 1025)) is smooth
