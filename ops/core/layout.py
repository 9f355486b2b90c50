"""Every path under the storage root, in one place.

Nothing else in the project joins folder or file names under the root: the ops, assets, CLI and benchmarks ask these
classes. The tree (docs/ARCHITECTURE.md, Data contracts):

    <root>/scenes/<scene_id>/            SceneLayout: pointcloud/ instances/ bev/ frames/
    <root>/captures/<name>/              SceneLayout of a capture (+ pointcloud/alignment.json)
    <root>/dataset/                      DatasetLayout: samples/ shards/train_<variant>/ eval/val_<variant>/ sharegpt/
    <root>/models/                       ModelsLayout: base/ checkpoints/<experiment>/<version>/ runs/<run>/
    <root>/evaluation/                   EvaluationLayout: predictions/<experiment>/ scores/<experiment>/ leaderboard.*
    <root>/ask/<name>/                   the `ask_answer` asset's pictures of the objects an answer names

Each artifact folder is written whole to a staging name beside it and renamed into place (``ops.core.atomic``), so
the paths below name either a complete artifact or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"  # a shard set's manifest, written last
SCAN2CAP_CORPUS = "scan2cap_corpus.json"  # an eval set's Scan2Cap reference corpus


@dataclass(frozen=True)
class SceneLayout:
    """One scene's artifact folder ``<root>/scenes/<scene_id>/`` (or any folder holding the same four artifacts)."""

    dir: Path

    @property
    def manifest(self) -> Path:
        """``manifest.json``: the raw scan's summary (frames, intrinsics, alignment, objects)."""
        return self.dir / "manifest.json"

    @property
    def pointcloud(self) -> Path:
        return self.dir / "pointcloud"

    @property
    def coord(self) -> Path:
        """float32 [P,3], metres, axis-aligned frame."""
        return self.pointcloud / "coord.npy"

    @property
    def color(self) -> Path:
        """uint8 [P,3] RGB."""
        return self.pointcloud / "color.npy"

    @property
    def alignment(self) -> Path:
        """Captures only: ``pointcloud/alignment.json``, the estimated floor alignment (``ops.capture.alignment``)."""
        return self.pointcloud / "alignment.json"

    @property
    def instances(self) -> Path:
        return self.dir / "instances"

    @property
    def instance(self) -> Path:
        """int32 [P] object ID per point, -1 = none."""
        return self.instances / "instance.npy"

    @property
    def boxes(self) -> Path:
        """float32 [K,6] centre xyz, size xyz; object ID k = row k."""
        return self.instances / "boxes.npy"

    @property
    def labels(self) -> Path:
        return self.instances / "labels.json"

    @property
    def bev(self) -> Path:
        return self.dir / "bev"

    @property
    def bev_image(self) -> Path:
        return self.bev / "bev.png"

    @property
    def bev_meta(self) -> Path:
        return self.bev / "bev.json"

    @property
    def frames(self) -> Path:
        return self.dir / "frames"

    @property
    def frames_meta(self) -> Path:
        return self.frames / "frames.json"

    def frame(self, name: str) -> Path:
        """A file named in ``frames.json`` (``frame_XX.jpg`` marked, ``raw_XX.jpg`` unmarked)."""
        return self.frames / name

    @property
    def stage_dirs(self) -> dict[str, Path]:
        """The folder each per-scene asset writes, by asset name."""
        return {
            "point_cloud": self.pointcloud,
            "instance_masks": self.instances,
            "bev_image": self.bev,
            "marked_frames": self.frames,
        }


def marked_frame_name(n: int) -> str:
    """``frame_XX.jpg``: the n-th sampled frame with its markers (XX counts from 00)."""
    return f"frame_{n:02d}.jpg"


def raw_frame_name(marked_name: str) -> str:
    """``frame_XX.jpg`` → ``raw_XX.jpg``: the same frame without markers."""
    return marked_name.replace("frame_", "raw_", 1)


@dataclass(frozen=True)
class DatasetLayout:
    """The training data ``<root>/dataset/`` (or a CLI ``--out`` folder)."""

    dir: Path

    @property
    def samples(self) -> Path:
        return self.dir / "samples"

    def samples_file(self, split: str, variant: str) -> Path:
        """``samples/<split>_<variant>.jsonl``: one sample per line, sorted by sample_id."""
        return self.samples / f"{split}_{variant}.jsonl"

    @property
    def samples_index(self) -> Path:
        """``samples/index.json``, written last by a samples build."""
        return self.samples / "index.json"

    def samples_corpus(self, split: str, name: str) -> Path:
        """``samples/<split>_<name>`` (the Scan2Cap reference corpus)."""
        return self.samples / f"{split}_{name}"

    @property
    def shards(self) -> Path:
        return self.dir / "shards"

    def train_shards(self, variant: str = "marked") -> Path:
        """``shards/train_<variant>/``: the Parquet training shards of one variant."""
        return self.shards / f"train_{variant}"

    @property
    def eval(self) -> Path:
        return self.dir / "eval"

    def eval_set(self, variant: str = "marked") -> Path:
        """``eval/val_<variant>/``: the evaluation shards of one variant, with the Scan2Cap corpus."""
        return self.eval / f"val_{variant}"

    def sharegpt(self, variant: str) -> Path:
        """``sharegpt/train_<variant>.json``: the optional ShareGPT export."""
        return self.dir / "sharegpt" / f"train_{variant}.json"


@dataclass(frozen=True)
class ModelsLayout:
    """``<root>/models/``: the default base model, every experiment's checkpoint versions and trainer runs."""

    dir: Path

    @property
    def base(self) -> Path:
        """The tiny random Qwen2-VL when no base model is configured."""
        return self.dir / "base"

    @property
    def checkpoints(self) -> Path:
        """``checkpoints/``: one folder per experiment."""
        return self.dir / "checkpoints"

    def experiment_checkpoints(self, experiment: str) -> Path:
        """``checkpoints/<experiment>/``: that experiment's versions ``v0001``, ``v0002``, ... (the last N kept)."""
        return self.checkpoints / experiment

    def checkpoint(self, experiment: str, version: str) -> Path:
        """``checkpoints/<experiment>/<version>/``: weights, ``loss_curve.png`` and ``lineage.json`` (written last)."""
        return self.experiment_checkpoints(experiment) / version

    def run(self, name: str) -> Path:
        """A trainer's working folder (its step checkpoints), kept for resuming."""
        return self.dir / "runs" / name


@dataclass(frozen=True)
class EvaluationLayout:
    """``<root>/evaluation/``: predictions and scores per experiment, and the leaderboard over all of them."""

    dir: Path

    @property
    def predictions(self) -> Path:
        return self.dir / "predictions"

    def prediction_run(self, run: str) -> Path:
        """One experiment's answers on its eval set: ``run.json``, ``predictions.jsonl``, chunk files and logs."""
        return self.predictions / run

    def run_record(self, run: str) -> Path:
        """``predictions/<run>/run.json``: model fingerprint, eval-set version, settings and the complete flag."""
        return self.prediction_run(run) / "run.json"

    def run_predictions(self, run: str) -> Path:
        """``predictions/<run>/predictions.jsonl``: the merged answers, sorted by sample id."""
        return self.prediction_run(run) / "predictions.jsonl"

    def run_logs(self, run: str) -> Path:
        """``predictions/<run>/logs/``: one log per chunk process."""
        return self.prediction_run(run) / "logs"

    @property
    def scores(self) -> Path:
        return self.dir / "scores"

    def run_scores(self, run: str) -> Path:
        """``scores/<run>/``: one experiment's benchmark files, ``summary.json`` and ``scores.md``."""
        return self.scores / run

    def benchmark_scores(self, run: str, benchmark: str) -> Path:
        """``scores/<run>/<benchmark>.json``: one run's metrics on one benchmark."""
        return self.run_scores(run) / f"{benchmark}.json"

    def scores_summary(self, run: str) -> Path:
        """``scores/<run>/summary.json``, written after the benchmark files: the run's record and scores."""
        return self.run_scores(run) / "summary.json"

    def scores_report(self, run: str) -> Path:
        """``scores/<run>/scores.md``: the run beside the paper's numbers."""
        return self.run_scores(run) / "scores.md"

    def leaderboard(self, suffix: str) -> Path:
        """``leaderboard.<suffix>`` (``md``, ``csv``, ``json``): every experiment's latest scores with lineage."""
        return self.dir / f"leaderboard.{suffix}"


@dataclass(frozen=True)
class StorageLayout:
    """The whole tree under one artifact root."""

    root: Path

    def scene(self, scene_id: str) -> SceneLayout:
        """Artifacts of one scene; ``scene_id`` must already be validated (``ops.scannet.scene_id``)."""
        return SceneLayout(self.scenes_dir / scene_id)

    @property
    def scenes_dir(self) -> Path:
        return self.root / "scenes"

    def capture(self, name: str) -> SceneLayout:
        """Artifacts of one capture, ``<root>/captures/<name>/`` (the scenes' folders); ``name`` already validated."""
        return SceneLayout(self.captures_dir / name)

    @property
    def captures_dir(self) -> Path:
        return self.root / "captures"

    @property
    def dataset(self) -> DatasetLayout:
        return DatasetLayout(self.root / "dataset")

    @property
    def models(self) -> ModelsLayout:
        return ModelsLayout(self.root / "models")

    @property
    def evaluation(self) -> EvaluationLayout:
        return EvaluationLayout(self.root / "evaluation")

    def ask(self, name: str) -> Path:
        """Pictures of the last `ask_answer` about capture or scene ``name`` (``ops.model.ask``)."""
        return self.root / "ask" / name
