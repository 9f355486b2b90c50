"""The ``ops.scannet`` readers (``scene``, ``ply``, ``annotations``, ``frame_sources``) against ScanNet files written
by hand (``fixtures_scannet``), the axis alignment of mesh and poses against values worked out by hand, the two frame
layouts against each other, and bad input."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from fixtures_scannet import (
    AXIS_ALIGNMENT,
    COLOR_SIZE,
    COLORS,
    DEPTH_SIZE,
    FACES,
    INTRINSIC_COLOR,
    INTRINSIC_DEPTH,
    NUM_FRAMES,
    SCENE_ID,
    SEG_INDICES,
    VALID,
    VERTEX_OBJECT_IDS,
    VERTICES,
    frame_depth,
    frame_rgb,
    ply_bytes,
)

from ops.core.errors import SceneInputError
from ops.scannet.annotations import (
    SegGroup,
    read_aggregation,
    read_label_map,
    read_scene_meta,
    read_segs,
    vertex_object_ids,
)
from ops.scannet.ply import Mesh, read_mesh_ply
from ops.scannet.scene import check_scene_dir, open_scene

# The fixture's axisAlignment by hand: +90 degrees about +Z, then +(1, 2, 3).
RZ90 = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], np.float64)
LABEL_TSV = (
    "id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyuClass\tnyu40class\teigen13class\tModelNet40\t"
    "ModelNet10\tShapeNetCore55\tsynsetoffset\twnsynsetid\twnsynsetkey\tmpcat40\tmpcat40index\n"
    "2\tchair\tchair\t4923\t5\t4\tchair\tchair\tChair\tchair\tchair\tchair\t03001627\tn03001627\tchair.n.01\tchair\t3\n"
    "7\ttable\ttable\t1170\t7\t5\ttable\ttable\tTable\ttable\ttable\ttable\t04379243\tn04379243\ttable.n.02\ttable\t5\n"
)


def files(scene_dir):
    return {
        "mesh": scene_dir / f"{SCENE_ID}_vh_clean_2.ply",
        "segs": scene_dir / f"{SCENE_ID}_vh_clean_2.0.010000.segs.json",
        "aggregation": scene_dir / f"{SCENE_ID}.aggregation.json",
        "meta": scene_dir / f"{SCENE_ID}.txt",
        "sens": scene_dir / f"{SCENE_ID}.sens",
    }


def assert_names(error: pytest.ExceptionInfo, path, scene_id: str | None = SCENE_ID) -> None:
    message = str(error.value)
    assert str(path) in message, message
    if scene_id:
        assert scene_id in message, message


def aligned(points) -> np.ndarray:
    """(x, y, z) -> (1 - y, 2 + x, 3 + z), written out instead of multiplying by the matrix under test."""
    points = np.asarray(points, np.float64)
    return np.stack([1 - points[:, 1], 2 + points[:, 0], 3 + points[:, 2]], axis=1)


# -- PLY --------------------------------------------------------------------------------------------------------


def test_mesh_ply_reads_exactly(sens_scene):
    mesh = read_mesh_ply(files(sens_scene)["mesh"], SCENE_ID)
    assert (mesh.vertices.dtype, mesh.colors.dtype, mesh.faces.dtype) == (np.float32, np.uint8, np.int32)
    np.testing.assert_array_equal(mesh.vertices, VERTICES)
    np.testing.assert_array_equal(mesh.colors, COLORS)
    np.testing.assert_array_equal(mesh.faces, FACES)


def _ply_variants() -> dict[str, tuple[bytes, str]]:
    good = ply_bytes()
    body = good.index(b"end_header\n") + len(b"end_header\n")
    quad = bytearray(good)
    quad[body + 16 * len(VERTICES) + 13] = 4  # the second face claims 4 vertices
    no_colour = good.replace(b"property uchar red\nproperty uchar green\nproperty uchar blue\n", b"")
    return {
        "empty": (b"", "empty"),
        "garbage": (b"\x00\x01 not a mesh" * 20, "not a PLY file"),
        "ascii": (good.replace(b"binary_little_endian", b"ascii"), "unsupported PLY format"),
        "big endian": (good.replace(b"binary_little_endian", b"binary_big_endian"), "unsupported PLY format"),
        "no end_header": (good[: body - 3], "not a PLY file"),
        "cut in vertices": (good[: body + 40], "truncated PLY: the file ends inside the vertex data"),
        "cut in faces": (good[:-5], "truncated PLY: the file ends inside the face data"),
        "trailing bytes": (good + b"\x00" * 13, "13 bytes after the last PLY element"),
        "bad count": (good.replace(b"element vertex 9", b"element vertex -9"), "malformed PLY header line"),
        "unknown type": (good.replace(b"property float x", b"property float128 x"), "malformed PLY header line"),
        "no colours": (no_colour, "lacks x/y/z or red/green/blue"),
        "index past the end": (ply_bytes(faces=np.array([[0, 1, 9]])), "face indices outside 0..8"),
        "negative index": (ply_bytes(faces=np.array([[0, -1, 2]])), "face indices outside 0..8"),
        "quad": (bytes(quad), "face 1 is not a triangle"),
        "no vertices": (ply_bytes(np.zeros((0, 3)), np.zeros((0, 3), np.uint8), np.zeros((0, 3), int)), "no vertices"),
        "nan vertex": (ply_bytes(np.where(VERTICES == 2, np.nan, VERTICES)), "non-finite"),
    }


@pytest.mark.parametrize("case", list(_ply_variants()))
def test_bad_mesh_is_refused_naming_scene_and_file(tmp_path, case):
    data, reason = _ply_variants()[case]
    path = tmp_path / "m.ply"
    path.write_bytes(data)
    with pytest.raises(SceneInputError, match=reason) as error:
        read_mesh_ply(path, SCENE_ID)
    assert_names(error, path)


def test_missing_mesh_names_scene_and_file(tmp_path):
    with pytest.raises(SceneInputError, match="cannot read mesh") as error:
        read_mesh_ply(tmp_path / "absent.ply", SCENE_ID)
    assert_names(error, tmp_path / "absent.ply")


# -- segs, aggregation, metadata, label map ---------------------------------------------------------------------


def test_segs_and_aggregation(sens_scene):
    segs = read_segs(files(sens_scene)["segs"], SCENE_ID)
    assert segs.dtype == np.int64 and segs.tolist() == SEG_INDICES
    groups = read_aggregation(files(sens_scene)["aggregation"], SCENE_ID)
    assert groups == [SegGroup(0, "table", (12, 13)), SegGroup(3, "chair", (10,))]  # sorted by objectId
    np.testing.assert_array_equal(vertex_object_ids(segs, groups), VERTEX_OBJECT_IDS)


def test_vertex_object_ids_edge_cases():
    segs = np.array([5, 6, 7, 5, 100])
    assert vertex_object_ids(segs, []).tolist() == [-1] * 5
    ids = vertex_object_ids(segs, [SegGroup(2, "a", (7, 100)), SegGroup(0, "b", (5, 5, 999))])
    assert ids.dtype == np.int32 and ids.tolist() == [0, -1, 2, 0, 2]
    with pytest.raises(ValueError, match="segment 7 belongs to objects 2 and 4"):
        vertex_object_ids(segs, [SegGroup(2, "a", (7,)), SegGroup(4, "b", (8, 7))])


@pytest.mark.parametrize("reader", [read_segs, read_aggregation])
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"segIndices": [1, 2', "malformed .* JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"", "malformed .* JSON"),
        (b"[1, 2, 3]", "segIndices|segGroups"),
    ],
)
def test_bad_json_is_refused_naming_the_file(tmp_path, reader, content, reason):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(SceneInputError, match=reason) as error:
        reader(path, SCENE_ID)
    assert_names(error, path)


@pytest.mark.parametrize(
    "segs", [[], [1, 2.5], [1, "2"], [1, True], [[1], [2]], [1, None], [2**70]], ids=lambda v: repr(v)[:12]
)
def test_bad_seg_indices_are_refused(tmp_path, segs):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"segIndices": segs}))
    with pytest.raises(SceneInputError, match="segIndices") as error:
        read_segs(path, SCENE_ID)
    assert_names(error, path)


@pytest.mark.parametrize(
    ("groups", "reason"),
    [
        ([{"objectId": -1, "label": "a", "segments": [1]}], r"segGroups\[0\]"),
        ([{"objectId": 0, "segments": [1]}], r"segGroups\[0\]"),
        (
            [{"objectId": 0, "label": "a", "segments": [1]}, {"objectId": 1, "label": "b", "segments": ["2"]}],
            r"segGroups\[1\]",
        ),
        (
            [{"objectId": 0, "label": "a", "segments": [1]}, {"objectId": 0, "label": "b", "segments": [2]}],
            "objectId 0 appears in more than one segGroup",
        ),
    ],
)
def test_bad_seg_groups_are_refused(tmp_path, groups, reason):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"segGroups": groups}))
    with pytest.raises(SceneInputError, match=reason) as error:
        read_aggregation(path, SCENE_ID)
    assert_names(error, path)


def test_scene_meta(sens_scene):
    meta = read_scene_meta(files(sens_scene)["meta"], SCENE_ID)
    assert meta.axis_alignment.dtype == np.float64
    np.testing.assert_array_equal(meta.axis_alignment, AXIS_ALIGNMENT)
    assert meta.color_size == COLOR_SIZE and meta.depth_size == DEPTH_SIZE
    np.testing.assert_array_equal(meta.color_intrinsics, INTRINSIC_COLOR[:3, :3])
    np.testing.assert_array_equal(meta.depth_intrinsics, INTRINSIC_DEPTH[:3, :3])
    assert meta.fields["sceneType"] == "Bedroom / Hotel" and meta.fields["numColorFrames"] == "5"


def test_scene_meta_without_alignment_is_identity(tmp_path):
    path = tmp_path / "test_scan.txt"  # as on ScanNet's test scans: no axisAlignment, no annotations
    path.write_text("colorHeight = 968\ncolorWidth = 1296\nsceneType = Office\n")
    meta = read_scene_meta(path)
    np.testing.assert_array_equal(meta.axis_alignment, np.eye(4))
    assert meta.color_size == (1296, 968) and meta.depth_size is None and meta.color_intrinsics is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"axisAlignment = 1 0 0\n", "axisAlignment must hold 16 finite numbers, has 3"),
        (b"axisAlignment = " + b"1 " * 15 + b"x\n", "axisAlignment is not numeric"),
        (b"axisAlignment = " + b"1 " * 15 + b"nan\n", "axisAlignment must hold 16 finite"),
        (b"colorWidth = 12.5\ncolorHeight = 4\n", "colorWidth/colorHeight must be positive integers"),
        (b"fx_color = fast\n", "fx_color is not numeric"),
        (b"sceneType = \xe9t\xe9\n", "not UTF-8"),
    ],
)
def test_bad_scene_meta_is_refused_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "s.txt"
    path.write_bytes(content)
    with pytest.raises(SceneInputError, match=reason) as error:
        read_scene_meta(path, SCENE_ID)
    assert_names(error, path)


def test_label_map(tmp_path):
    path = tmp_path / "scannetv2-labels.combined.tsv"
    path.write_text(LABEL_TSV)
    labels = read_label_map(path)
    assert list(labels) == ["chair", "table"]
    assert (labels["chair"].id, labels["chair"].nyu40id, labels["table"].nyu40class) == (2, 5, "table")
    path.write_text(LABEL_TSV + "9\tlamp\tlamp\t1\tforty\n")
    with pytest.raises(SceneInputError, match="line 4 is malformed") as error:
        read_label_map(path)
    assert_names(error, path, scene_id=None)
    path.write_text("id\traw_category\n1\tchair\n")
    with pytest.raises(SceneInputError, match="header lacks"):
        read_label_map(path)


# -- whole scenes -----------------------------------------------------------------------------------------------


def test_opening_a_scene_reads_only_its_metadata(sens_scene, exported_scene):
    for scene_dir in (sens_scene, exported_scene):
        files(scene_dir)["mesh"].write_bytes(b"garbage")
        files(scene_dir)["segs"].write_bytes(b"{")
    files(sens_scene)["sens"].write_bytes(b"garbage")
    shutil.rmtree(exported_scene / "color")
    scene = open_scene(sens_scene)  # nothing but <scene>.txt is read here
    assert scene.scene_id == SCENE_ID and scene.source == "sens"
    with pytest.raises(SceneInputError, match="unsupported .sens version") as error:
        _ = scene.num_frames
    assert_names(error, files(sens_scene)["sens"])
    with pytest.raises(SceneInputError, match="not a PLY file") as error:
        scene.mesh()
    assert_names(error, files(sens_scene)["mesh"])
    with open_scene(exported_scene) as scene:
        assert scene.source == "exported" and scene.num_frames == NUM_FRAMES
        np.testing.assert_array_equal(scene.valid_frame_mask(), VALID)  # poses need no image
        with pytest.raises(SceneInputError, match="cannot read colour image: missing") as error:
            scene.read_frames([0])
        assert_names(error, exported_scene / "color" / "0.jpg")


@pytest.mark.parametrize("layout", ["sens", "exported"])
def test_alignment_is_applied_to_mesh_and_poses(sens_scene, exported_scene, layout):
    with open_scene(sens_scene if layout == "sens" else exported_scene) as scene:
        np.testing.assert_array_equal(scene.axis_alignment, AXIS_ALIGNMENT)
        mesh = scene.mesh()
        assert isinstance(mesh, Mesh) and mesh.vertices.dtype == np.float32
        np.testing.assert_allclose(mesh.vertices, aligned(VERTICES), atol=1e-6)
        np.testing.assert_allclose(mesh.vertices[[0, 2]], [[1, 3, 3], [0, 4, 3]], atol=1e-6)
        np.testing.assert_array_equal(mesh.colors, COLORS)
        np.testing.assert_array_equal(mesh.faces, FACES)
        poses = scene.poses()
        assert poses.shape == (NUM_FRAMES, 4, 4) and poses.dtype == np.float64
        # Frame 0: identity rotation at (0.5, 0, 1.25) -> rotation Rz(90), position (1, 2.5, 4.25).
        np.testing.assert_allclose(poses[0][:3, :3], RZ90, atol=1e-7)
        np.testing.assert_allclose(poses[0][:3, 3], [1, 2.5, 4.25], atol=1e-7)
        # Frame 4: Rz(-90) at (-1.5, 0.25, 1.5) -> identity rotation at (0.75, 0.5, 4.5).
        np.testing.assert_allclose(poses[4][:3, :3], np.eye(3), atol=1e-7)
        np.testing.assert_allclose(poses[4][:3, 3], [0.75, 0.5, 4.5], atol=1e-7)
        np.testing.assert_array_equal(poses[VALID][:, 3], [[0, 0, 0, 1]] * 3)
        assert np.isfinite(poses[VALID]).all() and not np.isfinite(poses[~VALID]).any()
        np.testing.assert_array_equal(scene.valid_frame_mask(), VALID)


@pytest.mark.parametrize("layout", ["sens", "exported"])
def test_read_frames_decodes_only_what_is_asked(sens_scene, exported_scene, layout):
    scene_dir = sens_scene if layout == "sens" else exported_scene
    with open_scene(scene_dir) as scene:
        frames = scene.read_frames(np.array([4, 0]))
        assert [frame.index for frame in frames] == [4, 0]
        for frame in frames:
            assert frame.rgb.shape == (COLOR_SIZE[1], COLOR_SIZE[0], 3) and frame.rgb.dtype == np.uint8
            assert np.abs(frame.rgb.astype(int) - frame_rgb(frame.index)).max() <= 12
            assert frame.depth.dtype == np.uint16
            np.testing.assert_array_equal(frame.depth, frame_depth(frame.index))
            np.testing.assert_array_equal(frame.pose, scene.poses()[frame.index])
        for frame in scene.read_frames([4, 1], colour=False):  # depth only, for depth tests
            assert frame.rgb is None
            np.testing.assert_array_equal(frame.depth, frame_depth(frame.index))
            np.testing.assert_array_equal(frame.pose, scene.poses()[frame.index])
        for invalid in (2, 3):
            with pytest.raises(SceneInputError, match=f"frame {invalid} has a non-finite pose") as error:
                scene.read_frames([0, invalid])
            assert_names(error, files(scene_dir)["sens"] if layout == "sens" else scene_dir / "pose" / f"{invalid}.txt")
        for outside in (-1, NUM_FRAMES):
            with pytest.raises(SceneInputError, match=f"frame {outside} out of range") as error:
                scene.read_frames([outside])
            assert_names(error, files(scene_dir)["sens"] if layout == "sens" else scene_dir / "pose")


def test_exported_layout_equals_the_sens_layout(sens_scene, exported_scene):
    with open_scene(sens_scene) as sens, open_scene(exported_scene) as exported:
        for name in ("num_frames", "color_size", "depth_size", "depth_shift"):
            assert getattr(sens, name) == getattr(exported, name), name
        np.testing.assert_array_equal(sens.color_intrinsics, exported.color_intrinsics)
        np.testing.assert_array_equal(sens.depth_intrinsics, exported.depth_intrinsics)
        np.testing.assert_array_equal(sens.valid_frame_mask(), exported.valid_frame_mask())
        np.testing.assert_array_equal(sens.poses(), exported.poses())
        for a, b in zip(sens.read_frames([0, 1, 4]), exported.read_frames([0, 1, 4]), strict=True):
            np.testing.assert_array_equal(a.rgb, b.rgb)  # the same JPEG bytes through the same decoder
            np.testing.assert_array_equal(a.depth, b.depth)
            np.testing.assert_array_equal(a.pose, b.pose)
        summary_sens, summary_exported = sens.summary(), exported.summary()
        assert (summary_sens.pop("source"), summary_exported.pop("source")) == ("sens", "exported")
        assert summary_sens == summary_exported


def test_objects_and_summary(sens_scene, tmp_path):
    (tmp_path / "labels.tsv").write_text(LABEL_TSV)
    with open_scene(sens_scene, label_map=tmp_path / "labels.tsv") as scene:
        np.testing.assert_array_equal(scene.object_ids(), VERTEX_OBJECT_IDS)
        # table: vertices 6-8 aligned to (3,1,3.5) (3,0,3.5) (2,0.5,5); chair: vertices 0-3 to (1,3,3) (1,4,3)
        # (0,4,3) (0,3,4).
        assert scene.objects() == [
            {"object_id": 0, "label": "table", "num_vertices": 3, "box": [2.5, 0.5, 4.25, 1, 1, 1.5], "nyu40id": 7},
            {"object_id": 3, "label": "chair", "num_vertices": 4, "box": [0.5, 3.5, 3.5, 1, 1, 1], "nyu40id": 5},
        ]
        summary = scene.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary == {
        "scene_id": SCENE_ID,
        "source": "sens",
        "num_frames": 5,
        "num_valid_frames": 3,
        "invalid_frames": [2, 3],
        "color_size": [32, 24],
        "depth_size": [16, 12],
        "color_intrinsics": INTRINSIC_COLOR[:3, :3].tolist(),
        "depth_intrinsics": INTRINSIC_DEPTH[:3, :3].tolist(),
        "depth_shift": 1000.0,
        "axis_alignment": AXIS_ALIGNMENT.tolist(),
        "num_vertices": 9,
        "num_faces": 5,
        "num_objects": 2,
        "labels": {"chair": 1, "table": 1},
        "bounds": [[-2, 0, 3], [3, 4, 5]],
    }
    with open_scene(sens_scene) as scene:
        assert "nyu40id" not in scene.objects()[0]


def test_object_without_vertices_has_no_box(sens_scene):
    groups = [{"objectId": 0, "label": "ghost", "segments": [77]}]
    files(sens_scene)["aggregation"].write_text(json.dumps({"segGroups": groups}))
    with open_scene(sens_scene) as scene:
        assert scene.objects() == [{"object_id": 0, "label": "ghost", "num_vertices": 0, "box": None}]


def test_annotation_errors_name_scene_and_file(sens_scene):
    paths = files(sens_scene)
    paths["segs"].write_text(json.dumps({"segIndices": SEG_INDICES[:-1]}))
    with pytest.raises(SceneInputError, match="8 segIndices for 9 mesh vertices") as error:
        open_scene(sens_scene).object_ids()
    assert_names(error, paths["segs"])
    paths["segs"].write_bytes(b"\x80\x81")
    with pytest.raises(SceneInputError, match="not UTF-8") as error:
        open_scene(sens_scene).objects()
    assert_names(error, paths["segs"])
    paths["segs"].write_text(json.dumps({"segIndices": SEG_INDICES}))
    groups = [{"objectId": 0, "label": "a", "segments": [10]}, {"objectId": 1, "label": "b", "segments": [12, 10]}]
    paths["aggregation"].write_text(json.dumps({"segGroups": groups}))
    with pytest.raises(SceneInputError, match="segment 10 belongs to objects 0 and 1") as error:
        open_scene(sens_scene).object_ids()
    assert_names(error, paths["aggregation"])
    paths["aggregation"].write_text('{"segGroups": [')
    with pytest.raises(SceneInputError, match="malformed aggregation JSON") as error:
        open_scene(sens_scene).summary()
    assert_names(error, paths["aggregation"])
    paths["meta"].unlink()
    with pytest.raises(SceneInputError, match="cannot read scene metadata") as error:
        open_scene(sens_scene)
    assert_names(error, paths["meta"])


def test_exported_scene_with_only_depth_intrinsics(exported_scene):
    (exported_scene / "intrinsic" / "intrinsic_color.txt").unlink()
    with open_scene(exported_scene) as scene:
        np.testing.assert_array_equal(scene.depth_intrinsics, INTRINSIC_DEPTH[:3, :3])
        with pytest.raises(SceneInputError, match="not at the depth size") as error:
            _ = scene.color_intrinsics
        assert_names(error, exported_scene / "intrinsic" / "intrinsic_color.txt")
    for index in range(NUM_FRAMES):  # colour registered to depth, as some exports ship it
        small = cv2.resize(frame_rgb(index), DEPTH_SIZE, interpolation=cv2.INTER_AREA)[:, :, ::-1]
        cv2.imwrite(str(exported_scene / "color" / f"{index}.jpg"), np.ascontiguousarray(small))
    with open_scene(exported_scene) as scene:
        assert scene.color_size == DEPTH_SIZE
        np.testing.assert_array_equal(scene.color_intrinsics, INTRINSIC_DEPTH[:3, :3])
        assert scene.read_frames([1])[0].rgb.shape == (DEPTH_SIZE[1], DEPTH_SIZE[0], 3)


def test_exported_frame_of_another_size_is_refused(exported_scene):
    cv2.imwrite(str(exported_scene / "depth" / "4.png"), np.zeros((5, 5), np.uint16))
    cv2.imwrite(str(exported_scene / "depth" / "1.png"), np.zeros(DEPTH_SIZE[::-1], np.uint8))
    with open_scene(exported_scene) as scene:
        with pytest.raises(SceneInputError, match="depth image is not") as error:
            scene.read_frames([4])
        assert_names(error, exported_scene / "depth" / "4.png")
        with pytest.raises(SceneInputError, match="not 16-bit") as error:
            scene.read_frames([1])
        assert_names(error, exported_scene / "depth" / "1.png")


# -- check_scene_dir --------------------------------------------------------------------------------------------


def test_check_scene_dir_accepts_both_layouts(sens_scene, exported_scene):
    assert check_scene_dir(sens_scene) == [] and check_scene_dir(exported_scene) == []


@pytest.mark.parametrize("key", ["mesh", "segs", "aggregation", "meta"])
def test_check_scene_dir_names_each_missing_or_empty_file(sens_scene, key):
    path = files(sens_scene)[key]
    path.write_bytes(b"")
    assert check_scene_dir(sens_scene) == [f"empty {path.name}"]
    path.unlink()
    assert check_scene_dir(sens_scene) == [f"missing {path.name}"]


def test_check_scene_dir_needs_a_frame_source(sens_scene, exported_scene):
    files(sens_scene)["sens"].write_bytes(b"")
    assert check_scene_dir(sens_scene) == [f"empty {SCENE_ID}.sens"]
    files(sens_scene)["sens"].unlink()
    (problem,) = check_scene_dir(sens_scene)
    assert problem.startswith(f"missing {SCENE_ID}.sens") and "pose/" in problem
    shutil.rmtree(exported_scene / "depth")
    (exported_scene / "intrinsic" / "intrinsic_depth.txt").unlink()
    assert check_scene_dir(exported_scene) == [
        f"missing depth/ (exported frames; no {SCENE_ID}.sens)",
        f"missing intrinsic/intrinsic_depth.txt (exported frames; no {SCENE_ID}.sens)",
    ]


@pytest.mark.parametrize("name", ["a,b", "..", "scene 1", "x" * 65, "scène", "a;rm -rf"])
def test_hostile_folder_names_are_refused_before_any_path_is_built(tmp_path, name):
    scene_dir = tmp_path / "scans" / name
    (problem,) = check_scene_dir(scene_dir)
    assert "invalid scene id" in problem and repr(scene_dir.name) in problem
    with pytest.raises(SceneInputError, match="invalid scene id"):
        open_scene(scene_dir)


def test_dotdot_path_is_judged_by_its_last_name(tmp_path, sens_scene):
    # "../x" never reaches a scene id: the id is the folder's own name, and ".." is not a valid one.
    assert "invalid scene id '..'" in check_scene_dir(sens_scene / "..")[0]
    assert check_scene_dir(sens_scene.parent / ".." / sens_scene.parent.name / SCENE_ID) == []
    assert check_scene_dir(tmp_path / "not_there") == [f"{tmp_path / 'not_there'}: not a folder"]


def test_exported_frames_follow_numeric_file_order(exported_scene):
    # SensReader's --frame_skip export keeps the .sens numbers: 0, 5, 10, ... sorted as numbers, not as text.
    numbers = [0, 5, 10, 20, 100]
    for index, number in reversed(list(enumerate(numbers))):
        for folder, ext in (("color", "jpg"), ("depth", "png"), ("pose", "txt")):
            (exported_scene / folder / f"{index}.{ext}").rename(exported_scene / folder / f"{number}.{ext}")
    (exported_scene / "pose" / "notes.txt").write_text("not a frame")
    (exported_scene / "pose" / "\u00b2.txt").write_text("a digit to str.isdigit, not to int()")
    with open_scene(exported_scene) as scene:
        assert scene.num_frames == NUM_FRAMES
        np.testing.assert_array_equal(scene.valid_frame_mask(), VALID)
        np.testing.assert_array_equal(scene.read_frames([4])[0].depth, frame_depth(4))
        with pytest.raises(SceneInputError) as error:
            scene.read_frames([3])
        assert_names(error, exported_scene / "pose" / "20.txt")
