"""Instances from ScanNet annotations, imported proposal files and geometric clustering; boxes and 3D IoU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ops.core.errors import SceneInputError
from ops.prompts.instances import box_from_points, box_iou_3d, instances_from_clusters, instances_from_gt
from ops.prompts.proposals import instances_from_proposals
from ops.prompts.writer import write_instances


def _grid_box(low, high, step=0.05) -> np.ndarray:
    """Points on the surface of an axis-aligned box (all six faces) with ``step`` spacing."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    axes = [np.arange(lo, hi + step / 2, step) for lo, hi in zip(low, high)]
    points = []
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        u, v = np.meshgrid(axes[others[0]], axes[others[1]], indexing="ij")
        for value in (low[axis], high[axis]):
            face = np.zeros((u.size, 3))
            face[:, axis] = value
            face[:, others[0]] = u.ravel()
            face[:, others[1]] = v.ravel()
            points.append(face)
    return np.unique(np.round(np.concatenate(points), 6), axis=0)


# --- boxes -----------------------------------------------------------------------------------------------------


def test_box_from_points_is_centre_and_size():
    box = box_from_points(np.array([[0.0, 1.0, 2.0], [2.0, 5.0, 3.0], [1.0, 2.0, 2.5]]))
    assert box.dtype == np.float32
    np.testing.assert_allclose(box, [1.0, 3.0, 2.5, 2.0, 4.0, 1.0])
    with pytest.raises(ValueError):
        box_from_points(np.zeros((0, 3)))


def test_box_iou_known_values():
    unit = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    assert box_iou_3d(unit, unit) == pytest.approx(1.0)
    assert box_iou_3d(unit, unit + [5, 0, 0, 0, 0, 0]) == 0.0
    # shifted by half a side along x: intersection 0.5, union 1.5
    assert box_iou_3d(unit, unit + [0.5, 0, 0, 0, 0, 0]) == pytest.approx(1 / 3)
    # a box inside another: 1 / 8
    assert box_iou_3d(unit, [0.0, 0.0, 0.0, 2.0, 2.0, 2.0]) == pytest.approx(1 / 8)
    pairwise = box_iou_3d(np.stack([unit, unit + [3, 0, 0, 0, 0, 0]])[:, None], np.stack([unit])[None])
    np.testing.assert_allclose(pairwise[:, 0], [1.0, 0.0], atol=1e-6)


# --- ground truth ----------------------------------------------------------------------------------------------


def _annotated_mesh():
    """Floor (objectId 0), a wall (3), a chair (5), a table (2) and unannotated vertices."""
    floor = np.c_[np.linspace(0, 4, 50), np.linspace(0, 3, 50), np.zeros(50)]
    wall = np.c_[np.zeros(30), np.linspace(0, 3, 30), np.linspace(0, 2.5, 30)]
    chair = _grid_box([1.0, 1.0, 0.0], [1.4, 1.5, 0.9], step=0.1)
    table = _grid_box([2.0, 1.0, 0.0], [3.0, 1.8, 0.75], step=0.1)
    loose = np.array([[3.5, 2.5, 0.2], [3.6, 2.5, 0.2]])
    vertices = np.concatenate([floor, wall, chair, table, loose])
    ids = np.concatenate([np.full(50, 0), np.full(30, 3), np.full(len(chair), 5), np.full(len(table), 2), [-1, -1]])
    labels = {0: "floor", 3: "wall", 5: "chair", 2: "table", 7: "lamp"}  # 7 has no vertices
    return vertices, ids, labels, chair, table


def test_gt_on_the_mesh_excludes_structure_and_orders_by_object_id():
    vertices, ids, labels, chair, table = _annotated_mesh()
    inst = instances_from_gt(vertices, ids, labels)
    assert [row["object_id"] for row in inst.labels] == [2, 5]
    assert [row["label"] for row in inst.labels] == ["table", "chair"]
    assert [row["id"] for row in inst.labels] == [0, 1]
    assert inst.instance.dtype == np.int32 and inst.boxes.dtype == np.float32
    np.testing.assert_array_equal(inst.instance[ids == 2], 0)
    np.testing.assert_array_equal(inst.instance[ids == 5], 1)
    np.testing.assert_array_equal(inst.instance[np.isin(ids, [0, 3, -1])], -1)
    np.testing.assert_allclose(inst.boxes[0], [2.5, 1.4, 0.375, 1.0, 0.8, 0.75], atol=1e-6)
    np.testing.assert_allclose(inst.boxes[1], [1.2, 1.25, 0.45, 0.4, 0.5, 0.9], atol=1e-6)
    assert inst.labels[0]["num_points"] == len(table) and inst.labels[1]["num_points"] == len(chair)


def test_gt_transfers_ids_to_another_cloud_by_nearest_vertex():
    vertices, ids, labels, chair, table = _annotated_mesh()
    fused = np.array([[1.02, 1.0, 0.5], [2.5, 1.02, 0.75], [5.0, 5.0, 5.0], [0.01, 1.0, 1.0]])
    inst = instances_from_gt(fused, ids, labels, mesh_vertices=vertices, max_transfer_distance=0.1)
    np.testing.assert_array_equal(inst.instance, [1, 0, -1, -1])  # far point and wall point get no object
    # boxes still come from the mesh vertices
    np.testing.assert_allclose(inst.boxes[0], [2.5, 1.4, 0.375, 1.0, 0.8, 0.75], atol=1e-6)
    assert [row["num_points"] for row in inst.labels] == [1, 1]


def test_gt_rejects_mismatched_vertex_ids():
    vertices, ids, labels, _, _ = _annotated_mesh()
    with pytest.raises(ValueError, match="vertex_object_ids"):
        instances_from_gt(vertices, ids[:-1], labels)


# --- proposals -------------------------------------------------------------------------------------------------


def _proposal_cloud():
    coord = np.array([[float(i), 0.0, 0.0] for i in range(10)])
    return coord


def _expected_box(indices):
    return box_from_points(_proposal_cloud()[indices])


def test_chat_scene_list_of_dicts(tmp_path):
    path = tmp_path / "scene0000_00.pt"
    torch.save(
        [
            {"label": "chair", "segments": [0, 1, 2]},
            {"label": "table", "segments": [2, 3, 4, 5]},
            {"label": "ghost", "segments": []},
        ],
        path,
    )
    inst = instances_from_proposals(path, _proposal_cloud())
    assert [row["label"] for row in inst.labels] == ["chair", "table", "ghost"]
    np.testing.assert_allclose(inst.boxes[0], _expected_box([0, 1, 2]))
    np.testing.assert_allclose(inst.boxes[1], _expected_box([2, 3, 4, 5]))
    np.testing.assert_array_equal(inst.boxes[2], np.zeros(6))  # empty proposal keeps its ID, zero box
    # no scores: the lower ID wins the shared point 2
    np.testing.assert_array_equal(inst.instance, [0, 0, 0, 1, 1, 1, -1, -1, -1, -1])
    assert [row["num_points"] for row in inst.labels] == [3, 3, 0]


def test_dict_of_masks_with_scores_highest_score_wins(tmp_path):
    masks = torch.zeros(2, 10, dtype=torch.bool)
    masks[0, :4] = True
    masks[1, 3:6] = True
    path = tmp_path / "p.pth"
    torch.save({"masks": masks, "scores": torch.tensor([0.2, 0.9]), "labels": ["a", "b"]}, path)
    inst = instances_from_proposals(path, _proposal_cloud())
    np.testing.assert_array_equal(inst.instance, [0, 0, 0, 1, 1, 1, -1, -1, -1, -1])
    assert inst.labels[0]["score"] == pytest.approx(0.2) and inst.labels[1]["score"] == pytest.approx(0.9)
    np.testing.assert_allclose(inst.boxes[0], _expected_box([0, 1, 2, 3]))  # box from the full mask


def test_npz_npy_and_first_100_in_file_order(tmp_path):
    masks = np.zeros((105, 10), dtype=bool)
    for k in range(105):
        masks[k, k % 10] = True
    np.savez(tmp_path / "p.npz", masks=masks, scores=np.linspace(0, 1, 105), labels=np.array(["x"] * 105))
    np.save(tmp_path / "p.npy", masks.astype(np.uint8))
    for name in ("p.npz", "p.npy"):
        inst = instances_from_proposals(tmp_path / name, _proposal_cloud())
        assert inst.num_objects == 100
        np.testing.assert_allclose(inst.boxes[:, 0], np.arange(100) % 10)
    limited = instances_from_proposals(tmp_path / "p.npy", _proposal_cloud(), max_proposals=3)
    assert limited.num_objects == 3


def test_scannet_benchmark_txt(tmp_path):
    (tmp_path / "pred_mask").mkdir()
    (tmp_path / "pred_mask" / "s_0.txt").write_text("\n".join("1" if i in (7, 8) else "0" for i in range(10)))
    (tmp_path / "pred_mask" / "s_1.txt").write_text("\n".join("1" if i == 1 else "0" for i in range(10)))
    (tmp_path / "s.txt").write_text("pred_mask/s_0.txt 5 0.75\npred_mask/s_1.txt 3 0.5\n")
    inst = instances_from_proposals(tmp_path / "s.txt", _proposal_cloud())
    assert [row["label"] for row in inst.labels] == ["5", "3"]
    np.testing.assert_allclose(inst.boxes[0], _expected_box([7, 8]))
    assert inst.instance[7] == 0 and inst.instance[1] == 1


def test_proposals_transfer_to_a_fused_cloud(tmp_path):
    path = tmp_path / "p.pt"
    torch.save([{"segments": [8, 9]}], path)
    fused = np.array([[8.04, 0.0, 0.0], [3.0, 0.0, 0.0], [9.0, 1.0, 0.0]])
    inst = instances_from_proposals(path, fused, mesh_vertices=_proposal_cloud(), max_transfer_distance=0.1)
    np.testing.assert_array_equal(inst.instance, [0, -1, -1])
    np.testing.assert_allclose(inst.boxes[0], _expected_box([8, 9]))


def test_bad_proposal_files_name_scene_and_file(tmp_path):
    pickled = tmp_path / "evil.pt"  # a numpy array inside needs a full unpickler, which is refused
    torch.save((np.zeros(3), ["chair"], [[0, 1]]), pickled)
    with pytest.raises(SceneInputError, match=r"scene 'scene0001_00', file .*evil\.pt"):
        instances_from_proposals(pickled, _proposal_cloud(), scene_id="scene0001_00")

    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SceneInputError, match="without pickle"):
        instances_from_proposals(objects, _proposal_cloud())

    out_of_range = tmp_path / "range.pt"
    torch.save([{"segments": [3, 12]}], out_of_range)
    with pytest.raises(SceneInputError, match="indexes vertex 12"):
        instances_from_proposals(out_of_range, _proposal_cloud())

    wrong_width = tmp_path / "wide.npz"
    np.savez(wrong_width, masks=np.zeros((2, 11), dtype=bool))
    with pytest.raises(SceneInputError, match=r"\[K,10\]"):
        instances_from_proposals(wrong_width, _proposal_cloud())

    escape = tmp_path / "escape.txt"
    escape.write_text("../outside.txt 1 0.5\n")
    with pytest.raises(SceneInputError, match="outside"):
        instances_from_proposals(escape, _proposal_cloud())

    with pytest.raises(SceneInputError, match="not found"):
        instances_from_proposals(tmp_path / "missing.pt", _proposal_cloud())


# --- clusters --------------------------------------------------------------------------------------------------


def _room() -> tuple[np.ndarray, list[np.ndarray]]:
    """A 4 x 3 m floor, two 2.5 m walls, three boxes of furniture and a 5-point speck."""
    rng = np.random.default_rng(0)
    step = 0.05
    xs, ys = np.meshgrid(np.arange(0, 4, step), np.arange(0, 3, step), indexing="ij")
    floor = np.c_[xs.ravel(), ys.ravel(), np.zeros(xs.size)]
    ys_w, zs_w = np.meshgrid(np.arange(0, 3, step), np.arange(0, 2.5, step), indexing="ij")
    wall_x = np.c_[np.zeros(ys_w.size), ys_w.ravel(), zs_w.ravel()]
    xs_w, zs_w = np.meshgrid(np.arange(0, 4, step), np.arange(0, 2.5, step), indexing="ij")
    wall_y = np.c_[xs_w.ravel(), np.full(xs_w.size, 3.0), zs_w.ravel()]
    boxes = [
        _grid_box([2.6, 0.5, 0.05], [3.4, 1.1, 0.8]),
        _grid_box([1.0, 1.5, 0.05], [1.5, 2.0, 0.5]),
        _grid_box([1.0, 0.4, 0.05], [1.4, 0.8, 1.0]),
    ]
    speck = np.array([[3.0, 2.5, 1.5]]) + rng.normal(0, 0.01, (5, 3))
    cloud = np.concatenate([floor, wall_x, wall_y, *boxes, speck])
    return cloud + rng.normal(0, 0.002, cloud.shape), boxes


def test_clusters_find_the_furniture_ordered_by_centre():
    cloud, boxes = _room()
    inst = instances_from_clusters(cloud)
    assert inst.num_objects == 3
    expected = sorted((box_from_points(b) for b in boxes), key=lambda b: (b[0], b[1], b[2]))
    for found, truth in zip(inst.boxes, expected):
        assert box_iou_3d(found, truth) > 0.8
    assert inst.boxes[0][0] < inst.boxes[1][0] or inst.boxes[0][1] < inst.boxes[1][1]
    assert (inst.instance == -1).sum() > len(cloud) // 2  # floor, walls and the speck carry no ID
    assert all(row["label"] is None for row in inst.labels)


def test_clusters_are_repeatable():
    cloud, _ = _room()
    first, second = instances_from_clusters(cloud, seed=3), instances_from_clusters(cloud, seed=3)
    assert first.instance.tobytes() == second.instance.tobytes()
    assert first.boxes.tobytes() == second.boxes.tobytes()
    assert first.labels == second.labels


def test_write_instances_folder(tmp_path):
    vertices, ids, labels, _, _ = _annotated_mesh()
    inst = instances_from_gt(vertices, ids, labels)
    write_instances(tmp_path / "a", inst, "gt")
    write_instances(tmp_path / "b", inst, "gt")
    folder = tmp_path / "a" / "instances"
    assert sorted(p.name for p in folder.iterdir()) == ["boxes.npy", "instance.npy", "labels.json"]
    for name in ("boxes.npy", "instance.npy", "labels.json"):
        assert (folder / name).read_bytes() == (tmp_path / "b" / "instances" / name).read_bytes()
    np.testing.assert_array_equal(np.load(folder / "instance.npy"), inst.instance)
    assert np.load(folder / "boxes.npy").dtype == np.float32
    stored = json.loads((folder / "labels.json").read_text())
    assert stored["source"] == "gt" and [o["object_id"] for o in stored["objects"]] == [2, 5]
    with pytest.raises(ValueError, match="source"):
        write_instances(tmp_path / "c", inst, "mask3d")
    assert not (tmp_path / "c" / "instances").exists()
