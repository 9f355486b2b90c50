"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_dataset import prepared_scenes  # noqa: F401  (session fixture of the dataset tests)
from fixtures_scannet import write_scene


@pytest.fixture
def sens_scene(tmp_path) -> Path:
    """The hand-assembled ScanNet scene of ``fixtures_scannet`` with its frames in ``<scene>.sens``."""
    return write_scene(tmp_path / "sens", "sens")


@pytest.fixture
def exported_scene(tmp_path) -> Path:
    """The same scene with its frames in SensReader's exported layout (``color/ depth/ pose/ intrinsic/``)."""
    return write_scene(tmp_path / "exported", "exported")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny random Qwen2-VL with the real Qwen tokenizer, saved once per test session (read-only for tests)."""
    from ops.vlm import build_tiny_qwen2vl

    return build_tiny_qwen2vl(tmp_path_factory.mktemp("tiny_model") / "qwen2vl-tiny")
