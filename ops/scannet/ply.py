"""ScanNet's ``_vh_clean_2.ply`` mesh reader.

The reader parses the header itself and maps the binary vertex and face blocks with numpy structured dtypes.
Open3D 0.19 was tried first: it keeps the vertex order and its float colours round back to the exact uint8 values,
but on a truncated file it only logs a warning and returns a partial mesh, and it accepts face indices past the
last vertex; checking those would mean parsing the header anyway. The numpy reader gives exact uint8 colours, the
file's vertex order, and an error naming the scene and file for every malformed input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ops.core.errors import SceneInputError
from ops.core.textfile import read_regular_bytes

_PLY_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}
_PLY_END_HEADER = b"end_header\n"
_MAX_PLY_HEADER = 64 * 1024
MAX_PLY_BYTES = 8 << 30  # 8 GiB: ScanNet's largest _vh_clean_2.ply is ~60 MB
_FACE_LIST_NAMES = ("vertex_indices", "vertex_index")


@dataclass
class Mesh:
    """Triangle mesh: ``vertices`` float32 [V,3] (metres), ``colors`` uint8 [V,3] RGB, ``faces`` int32 [F,3]."""

    vertices: np.ndarray
    colors: np.ndarray
    faces: np.ndarray


@dataclass
class _PlyElement:
    name: str
    count: int
    properties: list[tuple[str, ...]]  # (type, name) or ("list", count type, item type, name)


def read_mesh_ply(path: str | Path, scene_id: str | None = None) -> Mesh:
    """Read a binary little-endian PLY (ScanNet ``_vh_clean_2.ply``) as stored: vertices, RGB colours, triangles."""
    path = Path(path)

    def fail(reason: str) -> SceneInputError:
        return SceneInputError(scene_id, path, reason)

    data = read_regular_bytes(path, scene_id, "mesh", MAX_PLY_BYTES)
    if not data:
        raise fail("mesh file is empty")
    header_end = data.find(_PLY_END_HEADER, 0, _MAX_PLY_HEADER)
    if not data.startswith(b"ply\n") or header_end < 0:
        raise fail("not a PLY file (missing 'ply' magic or 'end_header')")
    elements = _parse_ply_header(data[:header_end].decode("ascii", errors="replace"), fail)
    body = memoryview(data)[header_end + len(_PLY_END_HEADER) :]
    offset = 0
    blocks: dict[str, np.ndarray] = {}
    for element in elements:
        if element.name in blocks or element.name not in ("vertex", "face"):
            raise fail(f"unexpected PLY element {element.name!r} (expected one 'vertex' and one 'face')")
        dtype = _vertex_dtype(element, fail) if element.name == "vertex" else _face_dtype(element, fail)
        size = dtype.itemsize * element.count
        if offset + size > len(body):
            raise fail(f"truncated PLY: the file ends inside the {element.name} data")
        blocks[element.name] = np.frombuffer(body, dtype=dtype, count=element.count, offset=offset)
        offset += size
    if offset != len(body):
        raise fail(f"{len(body) - offset} bytes after the last PLY element (header counts do not match the data)")
    if "vertex" not in blocks or len(blocks["vertex"]) == 0:
        raise fail("mesh has no vertices")
    vertex = blocks["vertex"]
    vertices = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1).astype(np.float32)
    colors = np.stack([vertex["red"], vertex["green"], vertex["blue"]], axis=1)
    faces = np.zeros((0, 3), np.int32)
    if "face" in blocks and len(blocks["face"]):
        face = blocks["face"]
        if not (face["count"] == 3).all():
            raise fail(f"face {int(np.argmax(face['count'] != 3))} is not a triangle (only triangles are supported)")
        faces = face["indices"].astype(np.int32)
        if faces.min() < 0 or faces.max() >= len(vertices):
            raise fail(f"face indices outside 0..{len(vertices) - 1}")
    if not np.isfinite(vertices).all():
        raise fail("mesh has non-finite vertex coordinates")
    return Mesh(vertices, colors, faces)


def _parse_ply_header(text: str, fail: Callable[[str], SceneInputError]) -> list[_PlyElement]:
    lines = text.split("\n")[1:]
    if "format binary_little_endian 1.0" not in lines:
        formats = [line for line in lines if line.startswith("format")]
        raise fail(f"unsupported PLY format {formats[:1]}: only 'binary_little_endian 1.0' meshes are read")
    elements: list[_PlyElement] = []
    for line in lines:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info", "format"):
            continue
        if words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append(_PlyElement(words[1], int(words[2]), []))
        elif words[0] == "property" and elements and len(words) == 3 and words[1] in _PLY_TYPES:
            elements[-1].properties.append((words[1], words[2]))
        elif (
            words[0] == "property"
            and elements
            and len(words) == 5
            and words[1] == "list"
            and words[2] in _PLY_TYPES
            and words[3] in _PLY_TYPES
        ):
            elements[-1].properties.append(tuple(words[1:]))
        else:
            raise fail(f"malformed PLY header line {line!r}")
    return elements


def _vertex_dtype(element: _PlyElement, fail: Callable[[str], SceneInputError]) -> np.dtype:
    names = [prop[-1] for prop in element.properties]
    if any(prop[0] == "list" for prop in element.properties) or len(set(names)) != len(names):
        raise fail("vertex properties must be distinct scalars")
    types = {prop[1]: prop[0] for prop in element.properties}
    if not {"x", "y", "z", "red", "green", "blue"} <= set(types):
        raise fail("vertex element lacks x/y/z or red/green/blue")
    if {types["red"], types["green"], types["blue"]} - {"uchar", "uint8"}:
        raise fail("vertex colours must be uchar red/green/blue")
    return np.dtype([(name, "<" + _PLY_TYPES[kind]) for kind, name in element.properties])


def _face_dtype(element: _PlyElement, fail: Callable[[str], SceneInputError]) -> np.dtype:
    # Every face is read as a triangle (fixed-size record); a non-triangle shows up in the first record it breaks.
    props = element.properties
    if len(props) != 1 or props[0][0] != "list" or props[0][3] not in _FACE_LIST_NAMES:
        raise fail("face element must hold one 'list ... vertex_indices' property")
    count_type, index_type = _PLY_TYPES[props[0][1]], _PLY_TYPES[props[0][2]]
    if index_type[0] not in "iu" or count_type[0] not in "iu":
        raise fail("face vertex_indices must be integers")
    return np.dtype([("count", "<" + count_type), ("indices", "<" + index_type, (3,))])
