"""Errors that name the scene and the file they came from."""

from __future__ import annotations

from pathlib import Path


class SceneInputError(ValueError):
    """Bad input for one scene: carries the scene id and the offending file."""

    def __init__(self, scene_id: str | None, path: str | Path | None, reason: str):
        self.scene_id = scene_id
        self.path = str(path) if path is not None else None
        self.reason = reason
        where = f"scene {scene_id!r}" if scene_id else "scene ?"
        if self.path:
            where += f", file {self.path}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):  # keep the fields when Ray or multiprocessing pickles the error
        return (type(self), (self.scene_id, self.path, self.reason))
