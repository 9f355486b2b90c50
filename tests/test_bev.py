"""BEV rendering (framing, z-buffer, ceiling cut, splatting), BEV markers and marker drawing."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ops.core.atomic import canonical_json
from ops.prompts.bev import BEV_BACKGROUND, apply_world_to_pixel, bev_markers, draw_bev_markers, render_bev
from ops.prompts.markers import draw_markers, layout_markers, marker_color, text_color
from ops.prompts.writer import write_bev

RED, GREEN, BLUE = (220, 20, 20), (20, 200, 20), (20, 20, 220)


def _pixel(bev, x, y) -> tuple[int, ...]:
    u, v = apply_world_to_pixel(bev.world_to_pixel, np.array([[x, y]]))[0]
    return tuple(int(c) for c in bev.image[int(np.floor(v + 0.5)), int(np.floor(u + 0.5))])


def _corners(z=0.0):
    """Four points framing the xy box [0, 4] x [0, 2]."""
    return np.array([[0.0, 0.0, z], [4.0, 0.0, z], [0.0, 2.0, z], [4.0, 2.0, z]])


def test_framing_margin_and_axes():
    bev = render_bev(_corners(), np.full((4, 3), 100, np.uint8), long_side=400, margin=0.1, splat=False)
    # framed area: 4 + 2 * 0.4 = 4.8 m wide, 2 + 0.8 = 2.8 m high, 400 px on the long side
    assert bev.size == (400, 233) and bev.image.shape == (233, 400, 3)
    scale = 400 / 4.8
    np.testing.assert_allclose(bev.world_to_pixel, [[scale, 0, 0.4 * scale - 0.5], [0, -scale, 2.4 * scale - 0.5]])
    # world (0, 0) is the bottom-left corner inside the margin; +X to the right, +Y up (v decreases with y)
    u0, v0 = apply_world_to_pixel(bev.world_to_pixel, np.array([[0.0, 0.0]]))[0]
    u1, v1 = apply_world_to_pixel(bev.world_to_pixel, np.array([[4.0, 2.0]]))[0]
    assert u0 == pytest.approx(0.4 * scale - 0.5) and v0 == pytest.approx(2.4 * scale - 0.5)
    assert u1 > u0 and v1 < v0
    assert u1 == pytest.approx(4.4 * scale - 0.5) and v1 == pytest.approx(0.4 * scale - 0.5)
    assert _pixel(bev, 0.0, 0.0) == (100, 100, 100) and _pixel(bev, 4.0, 2.0) == (100, 100, 100)
    assert tuple(bev.image[0, 0]) == BEV_BACKGROUND  # the margin is background


def test_highest_point_wins_regardless_of_order():
    coord = np.concatenate([_corners(), [[2.0, 1.0, 0.2], [2.0, 1.0, 1.5], [2.0, 1.0, 0.9]]])
    color = np.array([[0, 0, 0]] * 4 + [RED, GREEN, BLUE], dtype=np.uint8)
    for order in (np.arange(7), np.array([0, 1, 2, 3, 6, 5, 4])):
        bev = render_bev(coord[order], color[order], long_side=200, splat=False)
        assert _pixel(bev, 2.0, 1.0) == GREEN


def test_ceiling_cut_drops_points_above_it():
    coord = np.concatenate([_corners(z=0.0), [[2.0, 1.0, 0.8], [2.0, 1.0, 2.6]]])
    color = np.array([[0, 0, 0]] * 4 + [GREEN, RED], dtype=np.uint8)
    assert _pixel(render_bev(coord, color, long_side=200, splat=False), 2.0, 1.0) == RED
    cut = render_bev(coord, color, long_side=200, ceiling_cut=2.0, splat=False)
    assert _pixel(cut, 2.0, 1.0) == GREEN


def _floor_and_table(step=0.05):
    """A 4 x 2 m green floor (z=0) and a red 1 x 1 m table top (z=0.75) sampled on offset grids."""
    xs, ys = np.meshgrid(np.arange(0, 4.001, step), np.arange(0, 2.001, step), indexing="ij")
    floor = np.c_[xs.ravel(), ys.ravel(), np.zeros(xs.size)]
    xt, yt = np.meshgrid(np.arange(1.52, 2.5, step), np.arange(0.52, 1.5, step), indexing="ij")
    table = np.c_[xt.ravel(), yt.ravel(), np.full(xt.size, 0.75)]
    coord = np.concatenate([floor, table])
    color = np.array([GREEN] * len(floor) + [RED] * len(table), dtype=np.uint8)
    return coord, color


def test_splatting_fills_holes_and_hides_lower_points():
    coord, color = _floor_and_table()
    sparse = render_bev(coord, color, long_side=512, margin=0.0, splat=False)
    dense = render_bev(coord, color, long_side=512, margin=0.0, splat=True)
    blank = np.all(sparse.image == BEV_BACKGROUND, axis=-1).mean()
    assert blank > 0.5  # 5 cm spacing at 128 px/m leaves most pixels empty
    assert np.all(dense.image == BEV_BACKGROUND, axis=-1).mean() < 0.01
    # inside the table top only the table shows; the floor does not poke through its gaps
    u0, v0 = apply_world_to_pixel(dense.world_to_pixel, np.array([[1.6, 1.4]]))[0]
    u1, v1 = apply_world_to_pixel(dense.world_to_pixel, np.array([[2.4, 0.6]]))[0]
    table_area = dense.image[int(v0) : int(v1), int(u0) : int(u1)].reshape(-1, 3)
    assert (table_area == RED).all(axis=1).mean() == 1.0
    sparse_area = sparse.image[int(v0) : int(v1), int(u0) : int(u1)].reshape(-1, 3)
    assert (sparse_area == GREEN).all(axis=1).any()  # without splatting the floor shows between table points


def test_points_hidden_under_the_top_surface_do_not_change_the_splat():
    """The splat radius comes from the points that won a pixel: a dense stack hidden under a sparse floor (1 cm
    apart in z, where the floor points are 5 cm apart) would otherwise shrink it and leave the floor full of holes."""
    coord, color = _floor_and_table()
    stacks = np.concatenate([coord - [0.0, 0.0, 0.01 * k] for k in range(1, 11)])
    hidden = render_bev(np.concatenate([coord, stacks]), np.concatenate([color] * 11), long_side=512, margin=0.0)
    alone = render_bev(coord, color, long_side=512, margin=0.0)
    assert np.array_equal(hidden.image, alone.image)
    assert np.all(hidden.image == BEV_BACKGROUND, axis=-1).mean() < 0.01


def test_bev_marker_is_the_box_centre_within_one_pixel():
    bev = render_bev(_corners(), np.zeros((4, 3), np.uint8), long_side=400, margin=0.1, splat=False)
    boxes = np.array([[1.0, 0.5, 0.3, 0.4, 0.6, 0.6], [3.0, 1.5, 1.0, 0.2, 0.2, 2.0], [0, 0, 0, 0, 0, 0]])
    markers = bev_markers(boxes, bev.world_to_pixel)
    assert sorted(markers) == [0, 1]  # an all-zero box (empty proposal) gets no marker
    scale = 400 / 4.8  # independent: u = (x + 0.4) * s - 0.5, v = (2.4 - y) * s - 0.5
    for k, (x, y) in ((0, (1.0, 0.5)), (1, (3.0, 1.5))):
        expected = ((x + 0.4) * scale - 0.5, (2.4 - y) * scale - 0.5)
        assert np.hypot(markers[k][0] - expected[0], markers[k][1] - expected[1]) < 1.0


def test_markers_are_drawn_in_their_colour_with_contrasting_text():
    image = np.full((200, 300, 3), 255, np.uint8)
    drawn = draw_markers(image, {7: [100.0, 100.0]}, size=40)
    assert tuple(drawn[100, 100 + 14]) == marker_color(7)  # inside the circle, right of the digit
    assert tuple(drawn[100, 100 - 24]) == (255, 255, 255)  # outside the circle
    digit = drawn[88:112, 92:108].reshape(-1, 3)
    assert (digit == text_color(marker_color(7))).all(axis=1).any()
    assert text_color((250, 250, 60)) == (0, 0, 0) and text_color((30, 30, 120)) == (255, 255, 255)
    assert len({marker_color(k) for k in range(100)}) == 100
    assert image.max() == 255 and image.min() == 255  # the input is left untouched
    in_place = draw_markers(image, {7: [100.0, 100.0]}, size=40, in_place=True)
    assert in_place is image and np.array_equal(image, drawn)
    with pytest.raises(ValueError, match="C-contiguous"):
        draw_markers(np.zeros((50, 60, 3), np.uint8)[:, ::2], {}, size=20, in_place=True)


def test_overlapping_markers_are_nudged_apart_deterministically():
    anchors = {3: [100.0, 100.0], 1: [104.0, 100.0], 2: [100.0, 105.0]}
    placed = layout_markers(anchors, size=30, width=400, height=300)
    assert placed[1] == (104.0, 100.0)  # the lowest ID keeps its anchor
    centres = np.array([placed[k] for k in sorted(placed)])
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1)[np.triu_indices(3, 1)]
    assert gaps.min() >= 30
    assert placed == layout_markers(anchors, size=30, width=400, height=300)
    # a marker on the border is pulled inside the image
    edge = layout_markers({0: [0.0, 299.0]}, size=30, width=400, height=300)[0]
    assert edge == (14.5, 284.5)


def test_same_inputs_give_identical_png_and_json():
    coord, color = _floor_and_table()
    boxes = np.array([[2.0, 1.0, 0.4, 1.0, 1.0, 0.75], [2.05, 1.0, 0.4, 0.2, 0.2, 0.2]])
    outputs = []
    for _ in range(2):
        bev = render_bev(coord, color, long_side=300)
        markers = bev_markers(boxes, bev.world_to_pixel)
        ok, png = cv2.imencode(".png", draw_bev_markers(bev, markers)[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 6])
        assert ok
        meta = {"size": list(bev.size), "world_to_pixel": bev.world_to_pixel.tolist(), "markers": markers}
        outputs.append((png.tobytes(), canonical_json(meta)))
    assert outputs[0] == outputs[1]


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        render_bev(np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
    with pytest.raises(ValueError, match="color"):
        render_bev(np.zeros((3, 3)), np.zeros((2, 3), np.uint8))


def test_write_bev_files_are_byte_identical_on_repeat(tmp_path):
    coord, color = _floor_and_table()
    boxes = np.array([[2.0, 1.0, 0.4, 1.0, 1.0, 0.75]])
    written = [write_bev(tmp_path / name, coord, color, boxes, long_side=256, marker_size=30) for name in ("a", "b")]
    metas = [meta for meta, _ in written]
    for file in ("bev.png", "bev.json"):
        assert (tmp_path / "a" / "bev" / file).read_bytes() == (tmp_path / "b" / "bev" / file).read_bytes()
    stored = json.loads((tmp_path / "a" / "bev" / "bev.json").read_text())
    assert stored["size"] == [256, 140]  # (2 + 0.4) / (4 + 0.4) * 256 = 139.6
    assert stored["markers"] == {"0": metas[0]["markers"][0]}
    image = cv2.imread(str(tmp_path / "a" / "bev" / "bev.png"))
    assert image.shape == (140, 256, 3)
    assert np.array_equal(image[:, :, ::-1], written[0][1])  # the returned image is the saved PNG's pixels
    u, v = (int(round(c)) for c in stored["markers"]["0"])
    assert tuple(image[v, u + 11][::-1]) == marker_color(0)  # the marker is drawn on the saved PNG (BGR on disk)
    assert not list((tmp_path / "a").glob(".*"))  # no staging leftovers
