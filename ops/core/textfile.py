"""Reading a whole input file as UTF-8 text, with an error that names the scene, the file and what it is."""

from __future__ import annotations

from pathlib import Path

from ops.core.errors import SceneInputError


def read_utf8_text(path: Path, scene_id: str | None, what: str) -> str:
    """The text of ``path``; an unreadable or non-UTF-8 file raises ``SceneInputError`` calling it ``what``."""
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise SceneInputError(scene_id, path, f"cannot read {what}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SceneInputError(scene_id, path, f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
