"""Object-ID markers shared by the BEV and the video frames: the ID number in a filled circle.

Style (GPT4Scene leaves it undocumented; these are this project's choices):
- a filled circle of diameter ``size`` pixels in a colour fixed by the ID (golden-ratio hue steps, so neighbouring
  IDs get well-separated hues), a ring and the number in black or white, whichever contrasts more with the fill;
- ``size`` defaults to 40 px on a 1024-px long side (the paper's ablation found size 40 best) and scales with the
  image (``marker_size_for``);
- overlapping markers are nudged apart deterministically: markers are placed in ascending ID order; one that would
  overlap an already placed marker moves to the first free spot on rings around its anchor (searched at fixed
  angles), and a thin leader line in its colour joins the circle to a dot on the true anchor. If no free spot
  exists the marker stays on its anchor. The recorded marker positions (``bev.json``, ``frames.json``) are always
  the anchors, never the nudged drawing positions.

Coordinates are pixels, u to the right and v down, pixel centres at integer values.
"""

from __future__ import annotations

import colorsys
import functools
import math
from collections.abc import Iterator, Mapping, Sequence

import cv2
import numpy as np

DEFAULT_MARKER_SIZE = 40  # circle diameter in px at REFERENCE_LONG_SIDE
REFERENCE_LONG_SIDE = 1024
_GOLDEN = 0.6180339887498949
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_SHIFT = 4  # fixed-point bits for sub-pixel circle and line positions
_RING_ANGLES = 12  # candidate directions per ring when nudging
_MAX_RINGS = 6


def marker_size_for(long_side: int, size_at_reference: int = DEFAULT_MARKER_SIZE) -> int:
    """Marker diameter for an image whose long side is ``long_side`` px (40 px at 1024 px by default)."""
    return max(8, int(round(size_at_reference * long_side / REFERENCE_LONG_SIDE)))


def marker_color(object_id: int) -> tuple[int, int, int]:
    """Deterministic RGB fill colour of an object ID."""
    hue = (object_id * _GOLDEN) % 1.0
    value = 0.95 if object_id % 2 == 0 else 0.75  # alternate brightness too, for IDs with close hues
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, value)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def text_color(fill: Sequence[int]) -> tuple[int, int, int]:
    """Black or white, whichever contrasts more with the RGB ``fill`` (relative luminance)."""
    r, g, b = (c / 255.0 for c in fill[:3])
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return (0, 0, 0) if luminance > 0.45 else (255, 255, 255)


def layout_markers(
    anchors: Mapping[int, Sequence[float]], size: int, width: int, height: int
) -> dict[int, tuple[float, float]]:
    """Drawing centres for markers at ``anchors`` ({id: (u, v)}): kept inside the image, nudged off each other."""
    radius = size / 2.0
    low_u, high_u = radius - 0.5, max(radius - 0.5, width - 0.5 - radius)
    low_v, high_v = radius - 0.5, max(radius - 0.5, height - 0.5 - radius)

    def clamp(u: float, v: float) -> tuple[float, float]:
        return min(max(u, low_u), high_u), min(max(v, low_v), high_v)

    placed: dict[int, tuple[float, float]] = {}
    for object_id in sorted(anchors):
        au, av = (float(x) for x in anchors[object_id][:2])
        free = (
            spot
            for spot in _candidate_spots(au, av, size, clamp)
            if all(math.hypot(spot[0] - pu, spot[1] - pv) >= size for pu, pv in placed.values())
        )
        placed[object_id] = next(free, clamp(au, av))
    return placed


def _candidate_spots(au: float, av: float, size: int, clamp) -> Iterator[tuple[float, float]]:
    """The anchor, then points on rings around it at fixed angles, nearest ring first (generated lazily)."""
    yield clamp(au, av)
    for ring in range(1, _MAX_RINGS + 1):
        step = ring * size * 0.6
        for k in range(_RING_ANGLES):
            angle = 2.0 * math.pi * k / _RING_ANGLES
            yield clamp(au + step * math.cos(angle), av - step * math.sin(angle))


def _fixed(u: float, v: float) -> tuple[int, int]:
    return int(round(u * (1 << _SHIFT))), int(round(v * (1 << _SHIFT)))


def draw_markers(
    image: np.ndarray, markers: Mapping[int, Sequence[float]], size: int, in_place: bool = False
) -> np.ndarray:
    """The RGB ``image`` with each ``{id: (u, v)}`` marker drawn (layout as in the module docstring): a copy, or
    with ``in_place`` the (C-contiguous) image itself, drawn on."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image HxWx3, got {image.dtype} {image.shape}")
    if in_place and not image.flags.c_contiguous:
        raise ValueError("drawing in place needs a C-contiguous image")
    out = image if in_place else np.ascontiguousarray(image).copy()
    height, width = out.shape[:2]
    centres = layout_markers(markers, size, width, height)
    line = max(1, int(round(size / 20)))
    radius_fixed = int(round(size / 2.0 * (1 << _SHIFT)))

    for object_id, (cu, cv) in centres.items():  # leader lines first, under every circle
        au, av = (float(x) for x in markers[object_id][:2])
        if math.hypot(cu - au, cv - av) > 1.0:
            fill = marker_color(object_id)
            cv2.line(out, _fixed(au, av), _fixed(cu, cv), fill, line, cv2.LINE_AA, _SHIFT)
            cv2.circle(out, _fixed(au, av), int(round(1.5 * line * (1 << _SHIFT))), fill, -1, cv2.LINE_AA, _SHIFT)

    for object_id, (cu, cv) in centres.items():
        fill = marker_color(object_id)
        ink = text_color(fill)
        cv2.circle(out, _fixed(cu, cv), radius_fixed, fill, -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(out, _fixed(cu, cv), radius_fixed, ink, line, cv2.LINE_AA, _SHIFT)
        text = str(object_id)
        thickness = max(1, int(round(size / 18)))
        scale, (tw, th) = _label_fit(text, size, thickness)
        origin = (int(round(cu - tw / 2.0)), int(round(cv + th / 2.0)))
        cv2.putText(out, text, origin, _FONT, scale, ink, thickness, cv2.LINE_AA)
    return out


@functools.lru_cache(maxsize=4096)
def _label_fit(text: str, size: int, thickness: int) -> tuple[float, tuple[int, int]]:
    """Font scale that fits ``text`` in a marker of diameter ``size``, and the text's size at that scale (px)."""
    (tw, th), _ = cv2.getTextSize(text, _FONT, 1.0, thickness)
    scale = min(0.66 * size / tw, 0.42 * size / th)
    (tw, th), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    return scale, (tw, th)
