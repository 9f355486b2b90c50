"""Scene identifiers: validated before they are ever joined into a path."""

from __future__ import annotations

import re

from ops.core.errors import SceneInputError

SCENE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def validate_scene_id(scene_id: str) -> str:
    """Return ``scene_id`` if it matches ``^[A-Za-z0-9_-]{1,64}$``; raise SceneInputError otherwise."""
    if not isinstance(scene_id, str) or not SCENE_ID_PATTERN.fullmatch(scene_id):
        raise SceneInputError(None, None, f"invalid scene id {scene_id!r}: must match {SCENE_ID_PATTERN.pattern}")
    return scene_id
