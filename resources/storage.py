"""Where raw scans are read from and where every artifact is written."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from ops.core.layout import DatasetLayout, EvaluationLayout, ModelsLayout, SceneLayout, StorageLayout
from ops.scannet.scene_id import validate_scene_id


class StorageRoot(dg.ConfigurableResource):
    """A local folder holding raw scans and all artifacts (docs/ARCHITECTURE.md, Data contracts).

    ``root`` holds ``scenes/`` and ``dataset/``; ``raw_root`` (default ``<root>/raw``) holds ``scans/<scene_id>/``
    and ``annotations/`` in ScanNet's layout, so it can point straight at a real ScanNet download.
    Relative paths are resolved against the working directory of the process.
    """

    root: str = Field(description="Artifact root folder (env GPT4SCENE_ROOT).")
    raw_root: str = Field(default="", description="Raw ScanNet-layout root; empty means <root>/raw.")
    scans_root: str = Field(default="", description="Folder of scene folders; empty means <raw_root>/scans.")

    @property
    def root_path(self) -> Path:
        return Path(self.root).expanduser().resolve()

    @property
    def raw_path(self) -> Path:
        return Path(self.raw_root).expanduser().resolve() if self.raw_root else self.root_path / "raw"

    @property
    def scans_dir(self) -> Path:
        return Path(self.scans_root).expanduser().resolve() if self.scans_root else self.raw_path / "scans"

    @property
    def annotations_dir(self) -> Path:
        return self.raw_path / "annotations"

    def raw_scene_dir(self, scene_id: str) -> Path:
        return self.scans_dir / validate_scene_id(scene_id)

    @property
    def captures_dir(self) -> Path:
        """``<raw_root>/captures``: capture folders (posed RGB-D video without annotation, ``ops.capture``)."""
        return self.raw_path / "captures"

    def raw_capture_dir(self, name: str) -> Path:
        return self.captures_dir / validate_scene_id(name)

    def capture(self, name: str) -> SceneLayout:
        """Artifacts of one capture, ``<root>/captures/<name>/``; the name is validated like a scene ID."""
        return self.layout.capture(validate_scene_id(name))

    @property
    def layout(self) -> StorageLayout:
        """Every path under the artifact root (``ops.core.layout``)."""
        return StorageLayout(self.root_path)

    def scene(self, scene_id: str) -> SceneLayout:
        """Artifacts of one scene, ``<root>/scenes/<scene_id>/``; the ID is validated first."""
        return self.layout.scene(validate_scene_id(scene_id))

    def scene_dir(self, scene_id: str) -> Path:
        """Per-scene artifact folder ``<root>/scenes/<scene_id>``."""
        return self.scene(scene_id).dir

    @property
    def dataset(self) -> DatasetLayout:
        return self.layout.dataset

    @property
    def dataset_dir(self) -> Path:
        return self.dataset.dir

    @property
    def models(self) -> ModelsLayout:
        return self.layout.models

    def base_model_dir(self, configured: str = "") -> Path:
        """The configured base model folder (``BaseModelSource.model_dir``), else ``<root>/models/base``."""
        return Path(configured).expanduser().resolve() if configured else self.models.base

    @property
    def evaluation(self) -> EvaluationLayout:
        return self.layout.evaluation
