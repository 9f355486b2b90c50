"""Synthetic ScanNet scenes: exact file formats, determinism, geometry, alignment and annotation truth.

The checks read the written files back with independent code (numpy, Open3D, ops.scannet.sens), not through the writers.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

os.environ.setdefault("EGL_PLATFORM", "surfaceless")

import cv2
import numpy as np
import open3d as o3d
import pytest

from ops.core.errors import SceneInputError
from ops.scannet.sens import SensFrame, SensHeader, SensReader, encode_color, encode_depth
from ops.scannet.writers import write_exported_frames, write_label_map_tsv, write_scene_meta
from ops.synthetic import ROOM_TYPES, generate_dataset, generate_scene
from ops.synthetic.catalog import nyu40_id
from ops.synthetic.facts import SceneFacts, noun
from ops.synthetic.room import layout_room

SMALL = dict(n_frames=30, color_size=(320, 240), depth_size=(160, 120))
SCANNET_PLY_HEADER = (
    "ply\nformat binary_little_endian 1.0\ncomment VCGLIB generated\nelement vertex {v}\nproperty float x\n"
    "property float y\nproperty float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\n"
    "property uchar alpha\nelement face {f}\nproperty list uchar int vertex_indices\nend_header\n"
)
TSV_HEADER = (
    "id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyuClass\tnyu40class\teigen13class\tModelNet40\t"
    "ModelNet10\tShapeNetCore55\tsynsetoffset\twnsynsetid\twnsynsetkey\tmpcat40\tmpcat40index"
)
SQA_ANNOTATION_KEYS = {"scene_id", "question_id", "question_type", "answer_type", "answers", "position", "rotation"}
M3DREF_KEYS = {"scene_id", "object_id", "object_ids", "object_name", "ann_id", "description", "token", "eval_type"}
ANNOTATION_FILES = (
    {
        f"{name}_{split}{suffix}"
        for split in ("train", "val")
        for name, suffix in (
            ("ScanRefer_filtered", ".json"),
            ("ScanQA_v1.0", ".json"),
            ("multi3drefer", ".json"),
            ("scannetv2", ".txt"),
        )
    }
    | {
        f"v1_balanced_{kind}_{split}_scannetv2.json"
        for split in ("train", "val")
        for kind in ("questions", "sqa_annotations")
    }
    | {"scannetv2-labels.combined.tsv"}
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("synth") / "a", n_scenes=3, seed=11, val_fraction=0.34, **SMALL)


def read_ply(path: Path) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """(header, xyz float32 [V,3], rgba uint8 [V,4], faces int32 [F,3]) of a ScanNet-layout binary PLY."""
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii")
    counts = {line.split()[1]: int(line.split()[2]) for line in header.splitlines() if line.startswith("element")}
    vertex = np.dtype([("xyz", "<f4", 3), ("rgba", "u1", 4)])
    face = np.dtype([("n", "u1"), ("idx", "<i4", 3)])
    vertices = np.frombuffer(data, vertex, counts["vertex"], end)
    faces = np.frombuffer(data, face, counts["face"], end + vertex.itemsize * counts["vertex"])
    assert end + vertex.itemsize * counts["vertex"] + face.itemsize * counts["face"] == len(data)
    assert np.all(faces["n"] == 3)
    return header, vertices["xyz"], vertices["rgba"], faces["idx"]


def read_alignment(path: Path) -> np.ndarray:
    fields = dict(line.split(" = ", 1) for line in path.read_text().splitlines())
    return np.array(fields["axisAlignment"].split(), dtype=np.float64).reshape(4, 4)


def test_scene_folder_and_annotation_files_have_scannet_names(dataset):
    for scene in dataset.scenes:
        sid = scene.scene_id
        names = [f"{sid}.sens", f"{sid}_vh_clean_2.ply", f"{sid}_vh_clean_2.0.010000.segs.json"]
        names += [f"{sid}.aggregation.json", f"{sid}.txt"]
        assert sorted(p.name for p in scene.scene_dir.iterdir()) == sorted(names)
    assert {p.name for p in (dataset.out_dir / "annotations").iterdir()} == ANNOTATION_FILES
    assert [s.scene_id for s in dataset.scenes] == ["scene0000_00", "scene0001_00", "scene0002_00"]
    assert sorted(p.name for p in dataset.scans_dir.iterdir()) == [s.scene_id for s in dataset.scenes]
    ann = dataset.out_dir / "annotations"
    assert (ann / "scannetv2_train.txt").read_text().split() == dataset.train_ids
    assert (ann / "scannetv2_val.txt").read_text().split() == dataset.val_ids
    assert len(dataset.val_ids) == 1 and len(dataset.train_ids) == 2


def test_generation_is_byte_identical_for_a_seed(dataset, tmp_path):
    again = generate_dataset(tmp_path / "b", n_scenes=3, seed=11, val_fraction=0.34, **SMALL)

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    first, second = files(dataset.out_dir), files(again.out_dir)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []
    other = generate_scene(tmp_path / "c", "scene0000_00", 12, n_frames=4, color_size=(64, 48), depth_size=(32, 24))
    ply = "scene0000_00_vh_clean_2.ply"
    assert (other.scene_dir / ply).read_bytes() != first[f"scans/scene0000_00/{ply}"]


def test_object_counts_and_categories():
    labels_per_type: dict[str, set[str]] = {}
    for seed in range(25):
        scene_type = sorted(ROOM_TYPES)[seed % len(ROOM_TYPES)]
        room = layout_room(np.random.default_rng(seed), scene_type)
        assert 8 <= len(room.objects) <= 25, (seed, scene_type, len(room.objects))
        labels_per_type.setdefault(scene_type, set()).update(o.furniture.label for o in room.objects)
    nyu40 = {nyu40_id(label) for labels in labels_per_type.values() for label in labels}
    assert len(nyu40) >= 12, sorted(nyu40)
    assert "monitor" in labels_per_type["Office"] and "pillow" in labels_per_type["Bedroom / Hotel"]


def test_ply_header_and_mesh_match_scannet(dataset):
    for scene in dataset.scenes:
        header, xyz, rgba, faces = read_ply(scene.scene_dir / f"{scene.scene_id}_vh_clean_2.ply")
        assert header == SCANNET_PLY_HEADER.format(v=len(xyz), f=len(faces))
        assert 50_000 <= len(xyz) <= 200_000
        assert len(xyz) == len(scene.vertex_object_ids) and len(faces) == scene.num_faces
        assert faces.min() == 0 and faces.max() == len(xyz) - 1
        assert np.all(rgba[:, 3] == 255) and len(np.unique(rgba[:, :3], axis=0)) > 100


def test_segments_and_aggregation_describe_the_objects(dataset):
    for scene in dataset.scenes:
        sid = scene.scene_id
        segs = json.loads((scene.scene_dir / f"{sid}_vh_clean_2.0.010000.segs.json").read_text())
        agg = json.loads((scene.scene_dir / f"{sid}.aggregation.json").read_text())
        assert set(segs) == {"params", "sceneId", "segIndices"} and segs["sceneId"] == sid
        assert set(agg) == {"sceneId", "appId", "segGroups", "segmentsFile"} and agg["sceneId"] == f"scannet.{sid}"
        seg_indices = np.array(segs["segIndices"])
        assert len(seg_indices) == len(scene.vertex_object_ids)
        # As in ScanNet, a segment id is the index of one of its vertices.
        assert np.all(seg_indices[np.unique(seg_indices)] == np.unique(seg_indices))
        groups = agg["segGroups"]
        assert [g["objectId"] for g in groups] == list(range(len(groups))) == [g["id"] for g in groups]
        owner = {seg: g["objectId"] for g in groups for seg in g["segments"]}
        assert sum(len(g["segments"]) for g in groups) == len(owner) == len(np.unique(seg_indices))
        vertex_objects = np.array([owner[s] for s in seg_indices])
        np.testing.assert_array_equal(vertex_objects, scene.vertex_object_ids)
        labels = Counter(g["label"] for g in groups)
        assert labels["wall"] == 4 and labels["floor"] == 1
        assert [g["label"] for g in groups] == [o.label for o in scene.objects]
        assert 8 <= len(groups) - 5 <= 25


def test_axis_alignment_round_trip(dataset):
    for scene in dataset.scenes:
        sid = scene.scene_id
        a = read_alignment(scene.scene_dir / f"{sid}.txt")
        np.testing.assert_allclose(a, scene.axis_alignment, atol=1e-9)
        assert not np.allclose(a, np.eye(4))
        _, xyz, _, _ = read_ply(scene.scene_dir / f"{sid}_vh_clean_2.ply")
        aligned = xyz.astype(np.float64) @ a[:3, :3].T + a[:3, 3]
        width, depth, height = scene.room_size
        floor = scene.objects[[o.label for o in scene.objects].index("floor")]
        np.testing.assert_allclose(floor.aabb_min, [-width / 2, -depth / 2, 0.0], atol=1e-4)
        for obj in scene.objects:
            points = aligned[scene.vertex_object_ids == obj.object_id]
            np.testing.assert_allclose(points.min(0), obj.aabb_min, atol=1e-4)
            np.testing.assert_allclose(points.max(0), obj.aabb_max, atol=1e-4)
        assert np.all(aligned[:, 2] >= -1e-4) and aligned[:, 2].max() == pytest.approx(height, abs=1e-4)
        with SensReader(scene.scene_dir / f"{sid}.sens") as sens:
            stored = sens.poses().astype(np.float64)
            assert sens.num_frames == scene.num_frames == SMALL["n_frames"]
            np.testing.assert_array_equal(sens.valid_frame_mask(), scene.valid)
        assert (~scene.valid).sum() == 3 and np.all(stored[~scene.valid] == -np.inf)
        np.testing.assert_allclose(a @ stored[scene.valid], scene.poses[scene.valid], atol=1e-4)
        # OpenCV axes: orthonormal rotation, camera y (down) points to world -Z, eye height 1.4-1.6 m.
        rotations = scene.poses[:, :3, :3]
        identity = np.broadcast_to(np.eye(3), rotations.shape)
        np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), identity, atol=1e-9)
        assert np.all(rotations[:, 2, 1] < -0.8) and np.all((scene.poses[:, 2, 3] > 1.3) & (scene.poses[:, 2, 3] < 1.7))


def test_depth_back_projects_onto_the_mesh(dataset):
    scene = dataset.scenes[0]
    sid = scene.scene_id
    _, xyz, _, faces = read_ply(scene.scene_dir / f"{sid}_vh_clean_2.ply")
    raycaster = o3d.t.geometry.RaycastingScene()
    raycaster.add_triangles(o3d.core.Tensor(xyz.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32)))
    with SensReader(scene.scene_dir / f"{sid}.sens") as sens:
        k = sens.header.intrinsic_depth[:3, :3].astype(np.float64)
        index = int(np.flatnonzero(sens.valid_frame_mask())[5])
        rgb, depth, pose = sens.read_frames([index])[0]
    assert rgb.shape == (240, 320, 3) and depth.shape == (120, 160) and depth.dtype == np.uint16
    v, u = np.nonzero(depth)
    assert len(u) > 0.9 * depth.size
    z = depth[v, u] / 1000.0
    camera = np.stack([(u - k[0, 2]) / k[0, 0] * z, (v - k[1, 2]) / k[1, 1] * z, z], axis=1)
    world = camera @ pose[:3, :3].T.astype(np.float64) + pose[:3, 3]  # stored pose: unaligned frame, like the PLY
    distance = raycaster.compute_distance(o3d.core.Tensor(world.astype(np.float32))).numpy()
    assert np.percentile(distance, 99) < 0.003 and distance.max() < 0.03  # mm rounding; grazing angles at edges
    assert rgb.reshape(-1, 3).std(axis=0).min() > 10  # a picture, not a flat fill


def test_exported_layout_matches_the_sens_stream(tmp_path):
    args = dict(seed=5, n_frames=6, color_size=(96, 72), depth_size=(64, 48), invalid_pose_frames=2)
    sens_truth = generate_scene(tmp_path / "sens", "scene0007_00", layout="sens", **args)
    exported = generate_scene(tmp_path / "exported", "scene0007_00", layout="exported", **args)
    root = exported.scene_dir
    assert sorted(p.name for p in (root / "intrinsic").iterdir()) == [
        "extrinsic_color.txt",
        "extrinsic_depth.txt",
        "intrinsic_color.txt",
        "intrinsic_depth.txt",
    ]
    assert not (root / "scene0007_00.sens").exists()
    k = np.loadtxt(root / "intrinsic" / "intrinsic_depth.txt")
    np.testing.assert_allclose(k[:3, :3], exported.depth_intrinsics, atol=1e-5)
    with SensReader(sens_truth.scene_dir / "scene0007_00.sens") as sens:
        for i in range(6):
            raw = sens.read_raw(i)
            assert (root / "color" / f"{i}.jpg").read_bytes() == raw.color_bytes
            depth = cv2.imread(str(root / "depth" / f"{i}.png"), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(depth, sens.read_depth(i))
            pose_text = (root / "pose" / f"{i}.txt").read_text()
            if exported.valid[i]:
                np.testing.assert_allclose(np.loadtxt(root / "pose" / f"{i}.txt"), raw.camera_to_world, atol=2e-6)
            else:
                assert pose_text == "-inf -inf -inf -inf\n" * 4


def test_annotation_schemas_and_object_ids(dataset):
    ann = dataset.out_dir / "annotations"
    objects = {s.scene_id: {o.object_id: o for o in s.objects} for s in dataset.scenes}
    for split, scene_ids in (("train", dataset.train_ids), ("val", dataset.val_ids)):
        scanrefer = json.loads((ann / f"ScanRefer_filtered_{split}.json").read_text())
        assert scanrefer and {r["scene_id"] for r in scanrefer} == set(scene_ids)
        for row in scanrefer:
            assert set(row) == {"scene_id", "object_id", "object_name", "ann_id", "description", "token"}
            obj = objects[row["scene_id"]][int(row["object_id"])]
            assert isinstance(row["object_id"], str) and row["object_name"] == obj.label.replace(" ", "_")
            assert obj.color in row["description"] and not obj.is_structure and row["token"][-1] == "."
        scanqa = json.loads((ann / f"ScanQA_v1.0_{split}.json").read_text())
        assert len({q["question_id"] for q in scanqa}) == len(scanqa) > 0
        for row in scanqa:
            assert set(row) == {"scene_id", "question_id", "question", "answers", "object_ids", "object_names"}
            names = [objects[row["scene_id"]][i].label.replace(" ", "_") for i in row["object_ids"]]
            assert names == row["object_names"] and row["answers"] and row["question"].endswith("?")
        questions = json.loads((ann / f"v1_balanced_questions_{split}_scannetv2.json").read_text())
        answers = json.loads((ann / f"v1_balanced_sqa_annotations_{split}_scannetv2.json").read_text())
        assert {"info", "license", "data_type", "data_subtype", "task_type", "questions"} <= set(questions)
        assert [q["question_id"] for q in questions["questions"]] == [a["question_id"] for a in answers["annotations"]]
        for q, a in zip(questions["questions"], answers["annotations"]):
            assert set(q) == {"scene_id", "situation", "alternative_situation", "question", "question_id"}
            assert set(a) == SQA_ANNOTATION_KEYS
            assert set(a["answers"][0]) == {"answer", "answer_confidence", "answer_id"}
            assert set(a["position"]) == {"x", "y", "z"} and set(a["rotation"]) == {"_x", "_y", "_z", "_w"}
            assert sum(v * v for v in a["rotation"].values()) == pytest.approx(1.0, abs=1e-5)
        m3d = json.loads((ann / f"multi3drefer_{split}.json").read_text())
        for row in m3d:
            assert set(row) == M3DREF_KEYS
            assert all(i in objects[row["scene_id"]] for i in row["object_ids"])
            expected = {"zt_wo_d": 0, "zt_w_d": 0, "st_wo_d": 1, "st_w_d": 1}.get(row["eval_type"])
            assert len(row["object_ids"]) == expected if expected is not None else len(row["object_ids"]) >= 2
    train_m3d = json.loads((ann / "multi3drefer_train.json").read_text())
    assert {r["eval_type"] for r in train_m3d} == {"zt_wo_d", "zt_w_d", "st_wo_d", "st_w_d", "mt"}
    sqa = json.loads((ann / "v1_balanced_questions_train_scannetv2.json").read_text())["questions"]
    prefixes = {q["question"].split()[0].lower() for q in sqa}
    assert {"what", "is", "how", "can", "which"} <= prefixes and prefixes - {"what", "is", "how", "can", "which"}
    tsv = (ann / "scannetv2-labels.combined.tsv").read_text().splitlines()
    assert tsv[0] == TSV_HEADER and all(len(line.split("\t")) == 17 for line in tsv)
    used = {o.label for s in dataset.scenes for o in s.objects}
    assert {line.split("\t")[1] for line in tsv[1:]} == used


def test_relations_in_annotations_hold_in_the_geometry(dataset):
    checked = Counter()
    for scene in dataset.scenes:
        facts = SceneFacts(scene)
        for (a_id, b_id), kinds in facts.pair_kinds.items():
            a, b = scene.object(a_id), scene.object(b_id)
            if "on" in kinds:  # resting on b's top, inside its footprint
                assert a.aabb_min[2] <= b.aabb_max[2] + 1e-3
                assert np.all(a.center[:2] > b.aabb_min[:2]) and np.all(a.center[:2] < b.aabb_max[:2])
                checked["on"] += 1
            if "left_of" in kinds or "right_of" in kinds:
                # Stand 3 m in front of b, look at it: OpenCV x (right) = forward x up; left means x < 0.
                eye = np.append(b.center[:2] + 3.0 * b.front, 1.5)
                forward = np.append(b.center[:2], 1.5) - eye
                right = np.cross(forward / np.linalg.norm(forward), [0.0, 0.0, 1.0])
                side = float((np.append(a.center[:2], 1.5) - eye) @ right)
                assert (side < 0) == ("left_of" in kinds), (scene.scene_id, a.label, b.label, kinds)
                checked["left/right"] += 1
            if "next_to" in kinds:
                gap = np.maximum(0, np.maximum(a.aabb_min[:2] - b.aabb_max[:2], b.aabb_min[:2] - a.aabb_max[:2]))
                assert np.linalg.norm(gap) <= 0.45
                checked["next_to"] += 1
    assert checked["on"] and checked["left/right"] and checked["next_to"], checked


def test_situated_answers_agree_with_the_pose(dataset):
    ann = dataset.out_dir / "annotations"
    questions = json.loads((ann / "v1_balanced_questions_train_scannetv2.json").read_text())["questions"]
    answers = json.loads((ann / "v1_balanced_sqa_annotations_train_scannetv2.json").read_text())["annotations"]
    scenes = {s.scene_id: s for s in dataset.scenes}
    checked = 0
    for q, a in zip(questions, answers):
        if q["question"] != "What is in front of me?":
            continue
        rot = a["rotation"]
        yaw = 2 * np.arctan2(rot["_z"], rot["_w"])
        heading = np.array([np.cos(yaw), np.sin(yaw)])
        position = np.array([a["position"]["x"], a["position"]["y"]])
        ahead = []
        for obj in scenes[q["scene_id"]].objects:
            offset = obj.center[:2] - position
            if not obj.is_structure and np.linalg.norm(offset) > 0.3:
                cos = offset @ heading / np.linalg.norm(offset)
                ahead.append((cos, noun(obj.label)))
        assert any(cos > np.cos(np.radians(45)) and label == a["answers"][0]["answer"] for cos, label in ahead)
        checked += 1
    assert checked


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(SceneInputError, match="invalid scene id"):
        generate_scene(tmp_path, "../escape", seed=0, n_frames=2)
    with pytest.raises(ValueError, match="invalid_pose_frames"):
        generate_scene(tmp_path, "scene0000_00", seed=0, n_frames=2, invalid_pose_frames=2)
    with pytest.raises(ValueError, match="layout"):
        generate_scene(tmp_path, "scene0000_00", seed=0, n_frames=2, layout="zip")
    assert list(tmp_path.iterdir()) == []


def test_writers_use_scannet_text_formats(tmp_path):
    fields = {"sceneType": "Office", "numColorFrames": 3, "fx_color": 1170.187988, "axisAlignment": np.eye(4)}
    write_scene_meta(tmp_path / "s.txt", fields)
    assert (tmp_path / "s.txt").read_text() == (
        "axisAlignment = 1.000000 0.000000 0.000000 0.000000 0.000000 1.000000 0.000000 0.000000 0.000000 0.000000 "
        "1.000000 0.000000 0.000000 0.000000 0.000000 1.000000\n"
        "fx_color = 1170.187988\nnumColorFrames = 3\nsceneType = Office\n"
    )
    write_label_map_tsv(tmp_path / "l.tsv", [{"id": 2, "raw_category": "chair", "nyu40id": 5}])
    assert (tmp_path / "l.tsv").read_text() == TSV_HEADER + "\n2\tchair\t\t\t5" + "\t" * 12 + "\n"
    header = SensHeader(4, 4, 4, 4, np.eye(4), np.eye(4), num_frames=1)
    color, depth = encode_color(np.zeros((4, 4, 3), np.uint8)), encode_depth(np.full((4, 4), 7, np.uint16))
    frame = SensFrame(np.full((4, 4), -np.inf), color, depth)
    assert write_exported_frames(tmp_path / "x", header, [frame]) == 1
    assert (tmp_path / "x" / "pose" / "0.txt").read_text() == "-inf -inf -inf -inf\n" * 4
    intrinsic = (tmp_path / "x" / "intrinsic" / "intrinsic_color.txt").read_text()
    assert intrinsic.splitlines()[0] == "1.000000 0.000000 0.000000 0.000000"
    assert cv2.imread(str(tmp_path / "x" / "depth" / "0.png"), cv2.IMREAD_UNCHANGED).tolist() == [[7] * 4] * 4


def test_round_trip_through_the_scannet_reader(dataset, tmp_path):
    scannet = pytest.importorskip("ops.scannet.scene", reason="ops.scannet.scene (the readers) is not in the tree yet")
    exported = generate_scene(tmp_path, "scene0100_00", seed=4, layout="exported", **SMALL)
    label_map = dataset.out_dir / "annotations" / "scannetv2-labels.combined.tsv"
    for truth, labels in ((dataset.scenes[0], label_map), (exported, None)):
        scene = scannet.open_scene(truth.scene_dir, labels)
        assert scene.scene_id == truth.scene_id and scene.num_frames == truth.num_frames
        np.testing.assert_array_equal(scene.valid_frame_mask(), truth.valid)
        np.testing.assert_allclose(scene.poses()[truth.valid], truth.poses[truth.valid], atol=1e-4)
        np.testing.assert_allclose(scene.depth_intrinsics, truth.depth_intrinsics, atol=1e-4)
        np.testing.assert_allclose(scene.color_intrinsics, truth.color_intrinsics, atol=1e-4)
        index = int(np.flatnonzero(truth.valid)[2])
        (frame,) = scene.read_frames([index])
        assert frame.rgb.shape == (240, 320, 3) and frame.depth.shape == (120, 160)
        np.testing.assert_allclose(frame.pose, truth.poses[index], atol=1e-4)
        mesh = scene.mesh()
        object_ids = scene.object_ids()
        np.testing.assert_array_equal(object_ids, truth.vertex_object_ids)
        for obj in truth.objects:
            points = mesh.vertices[object_ids == obj.object_id]
            np.testing.assert_allclose(points.min(0), obj.aabb_min, atol=1e-4)
            np.testing.assert_allclose(points.max(0), obj.aabb_max, atol=1e-4)
        rows = [(r["object_id"], r["label"], r.get("nyu40id")) for r in scene.objects()]
        assert rows == [(o.object_id, o.label, nyu40_id(o.label) if labels else None) for o in truth.objects]
