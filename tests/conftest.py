"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_scannet import write_scene


@pytest.fixture
def sens_scene(tmp_path) -> Path:
    """The hand-assembled ScanNet scene of ``fixtures_scannet`` with its frames in ``<scene>.sens``."""
    return write_scene(tmp_path / "sens", "sens")


@pytest.fixture
def exported_scene(tmp_path) -> Path:
    """The same scene with its frames in SensReader's exported layout (``color/ depth/ pose/ intrinsic/``)."""
    return write_scene(tmp_path / "exported", "exported")
