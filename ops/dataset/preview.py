"""A shard row as Markdown with small JPEG thumbnails, for the Dagster UI's asset metadata."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ops.dataset.annotations import IMAGE_PLACEHOLDER


def _thumbnail_uri(image: bytes, long_side: int) -> str | None:
    array = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    if array is None:
        return None
    scale = min(1.0, long_side / max(array.shape[:2]))
    size = (max(1, round(array.shape[1] * scale)), max(1, round(array.shape[0] * scale)))
    small = cv2.resize(array, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return f"data:image/jpeg;base64,{base64.b64encode(data.tobytes()).decode('ascii')}" if ok else None


def sample_markdown(
    row: Mapping[str, Any], root: str | Path | None = None, max_images: int = 9, thumb_px: int = 112
) -> str:
    """One shard row as Markdown: its images as small JPEG thumbnails (in model order, at most ``max_images``),
    then the user turn and the answer. ``row["images"]`` are bytes, or paths read under ``root``."""
    images = list(row["images"])
    shown = []
    for n, image in enumerate(images[:max_images]):
        data = image if isinstance(image, bytes) else (Path(root) / image).read_bytes() if root else None
        uri = _thumbnail_uri(data, thumb_px) if data else None
        shown.append(f"![image {n}]({uri})" if uri else f"`image {n}: {image if isinstance(image, str) else '?'}`")
    more = f" (+{len(images) - max_images} more)" if len(images) > max_images else ""
    user = next(m["content"] for m in row["messages"] if m["role"] == "user")
    answer = next(m["content"] for m in row["messages"] if m["role"] == "assistant")
    count = user.count(IMAGE_PLACEHOLDER)
    text = user.replace(IMAGE_PLACEHOLDER, "")
    return "\n".join(
        [
            f"**{row['task']}** · `{row['sample_id']}` · {len(images)} images{more}",
            "",
            " ".join(shown),
            "",
            f"**User** ({count} × `{IMAGE_PLACEHOLDER}`, then): {html.escape(text)}",
            "",
            f"**Assistant**: {html.escape(answer)}",
        ]
    )
