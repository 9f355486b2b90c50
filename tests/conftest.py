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
    from ops.model.vlm import build_tiny_qwen2vl

    return build_tiny_qwen2vl(tmp_path_factory.mktemp("tiny_model") / "qwen2vl-tiny")


@pytest.fixture(scope="session")
def eval_data(tmp_path_factory):
    """Prepared synthetic scenes with samples, shards and every eval-set variant (``fixtures_eval``), read-only."""
    from fixtures_eval import build_eval_data

    return build_eval_data(tmp_path_factory.mktemp("eval_data"))


@pytest.fixture(scope="session")
def caption_scorer():
    """One pycocoevalcap scorer (one METEOR JVM, ~7 s to start) shared by the evaluation tests."""
    from ops.metrics.captions import CaptionScorer

    with CaptionScorer() as scorer:
        yield scorer
