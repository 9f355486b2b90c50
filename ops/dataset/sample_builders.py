"""Benchmark records + scene contexts → samples, one builder per task (rules in ``ops.dataset.samples``).

Train keeps one sample per distinct answer / description and only targets that map to a marker ID (IoU >=
``iou_threshold`` for proposals); val keeps every query whose targets have GT boxes and adds the evaluation fields
(``Sample.eval``). Every dropped record is counted by reason in ``TaskStats``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ops.dataset.annotations import FILE_NAMES
from ops.dataset.benchmarks import Benchmarks, Multi3DReferRecord
from ops.dataset.samples import (
    GROUNDING_TEMPLATES,
    MULTI3DREFER_TEMPLATES,
    QA_SUFFIX,
    SCAN2CAP_TEMPLATES,
    SPLITS,
    TASKS,
    VARIANTS,
    Sample,
    capitalize_sentences,
    multi3drefer_answer,
    object_token,
    pick,
    qa_answer,
    sample_rng,
    strip_description,
)
from ops.dataset.scene_context import ObjectMatch, SceneContext, match_object, match_scan2cap
from ops.metrics.answers import SQA3D_QUESTION_TYPES, sqa3d_question_type

MAX_REPORTED = 20  # unknown-object annotations listed per task (all are counted)


@dataclass(frozen=True)
class BuildSettings:
    """``split`` train (IoU filtering, one sample per answer/description) or val (every query, eval fields)."""

    split: str = "train"
    variant: str = "marked"
    tasks: tuple[str, ...] = TASKS
    iou_threshold: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if not self.tasks or set(self.tasks) - set(TASKS):
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {self.tasks!r}")
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1], got {self.iou_threshold}")


@dataclass
class TaskStats:
    """Per task: annotation records seen (Scan2Cap: described objects), records that gave samples, samples made, and
    why records were dropped."""

    records: int = 0
    kept: int = 0
    samples: int = 0
    dropped_by_reason: Counter[str] = field(default_factory=Counter)
    unknown_objects: list[str] = field(default_factory=list)  # "<file>: scene <id> has no object <n>", first 20

    @property
    def dropped(self) -> int:
        """Records dropped, for any reason."""
        return sum(self.dropped_by_reason.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "kept": self.kept,
            "samples": self.samples,
            "dropped": self.dropped,
            "dropped_by_reason": dict(sorted(self.dropped_by_reason.items())),
            "unknown_objects": self.unknown_objects,
        }

    @classmethod
    def from_dict(cls, stats: Mapping[str, Any]) -> TaskStats:
        return cls(
            int(stats["records"]),
            int(stats["kept"]),
            int(stats["samples"]),
            Counter(stats["dropped_by_reason"]),
            list(stats["unknown_objects"]),
        )


@dataclass
class SampleSet:
    """Built samples (sorted by ``sample_id``), per-task stats, and (val) the Scan2Cap reference corpus of every
    described object of the built scenes, ``"<scene>|<objectId>"`` → capitalised descriptions."""

    settings: BuildSettings
    samples: list[Sample]
    stats: dict[str, TaskStats]
    scan2cap_corpus: dict[str, list[str]]


class _Builder:
    def __init__(self, benchmarks: Benchmarks, scenes: Mapping[str, SceneContext], settings: BuildSettings):
        self.benchmarks = benchmarks
        self.scenes = scenes
        self.settings = settings
        self.train = settings.split == "train"
        self.samples: list[Sample] = []
        self.stats = {task: TaskStats() for task in settings.tasks}
        self.corpus: dict[str, list[str]] = {}

    # helpers
    def scene(self, task: str, scene_id: str) -> SceneContext | None:
        self.stats[task].records += 1
        scene = self.scenes.get(scene_id)
        if scene is None:
            self.stats[task].dropped_by_reason["scene_unavailable"] += 1
        return scene

    def drop(self, task: str, reason: str, scene_id: str = "", object_id: int = -1) -> None:
        stats = self.stats[task]
        stats.dropped_by_reason[reason] += 1
        if reason == "unknown_object" and len(stats.unknown_objects) < MAX_REPORTED:
            # An annotation naming an object the scan does not have: reported with its file, as bad input is.
            source = FILE_NAMES["scanrefer" if task == "scan2cap" else task].format(split=self.settings.split)
            stats.unknown_objects.append(f"{source}: scene {scene_id} has no object {object_id} in its aggregation")

    def add(self, task: str, samples: list[Sample]) -> None:
        self.stats[task].kept += 1
        self.stats[task].samples += len(samples)
        self.samples.extend(samples)

    def make(
        self,
        sample_id: str,
        scene: SceneContext,
        task: str,
        prompt: str,
        answer: str,
        target_ids: Iterable[int] = (),
        extras: dict[str, Any] | None = None,
    ) -> Sample:
        return Sample(
            sample_id,
            scene.scene_id,
            task,
            prompt,
            answer,
            tuple(target_ids),
            scene.images(self.settings.variant),
            None if self.train else extras,
        )

    def target_reason(self, scene: SceneContext, object_id: int, match: ObjectMatch) -> str | None:
        """Why a target cannot be used for training (None: it can)."""
        if object_id not in scene.gt_boxes:
            return "unknown_object"
        if match.marker_id is None:
            return "no_marker"
        if scene.source != "gt" and match.iou < self.settings.iou_threshold:
            return "low_iou"
        return None

    @staticmethod
    def boxes_fields(scene: SceneContext) -> dict[str, Any]:
        return {"proposal_boxes": scene.boxes_path, "proposal_boxes_sha256": scene.boxes_sha256}

    # tasks
    def scanqa(self) -> None:
        for record in self.benchmarks.scanqa:
            scene = self.scene("scanqa", record.scene_id)
            if scene is None:
                continue
            prompt = record.question.strip() + QA_SUFFIX
            targets = []
            for oid in record.object_ids:
                match = match_object(scene, oid)
                if match.marker_id is not None and (not self.train or self.target_reason(scene, oid, match) is None):
                    targets.append(match.marker_id)
            base = f"scanqa-{record.scene_id}-{record.question_id}"
            answers = [a for a in dict.fromkeys(a.strip() for a in record.answers) if a]
            if self.train:
                samples = [
                    self.make(f"{base}-{n}", scene, "scanqa", prompt, qa_answer(a), targets)
                    for n, a in enumerate(answers)
                ]
            else:
                extras = {
                    "question_id": record.question_id,
                    "refs": list(record.answers),
                    "object_ids": list(record.object_ids),
                }
                samples = [self.make(base, scene, "scanqa", prompt, qa_answer(answers[0]), targets, extras)]
            self.add("scanqa", samples)

    def sqa3d(self) -> None:
        for record in self.benchmarks.sqa3d:
            scene = self.scene("sqa3d", record.scene_id)
            if scene is None:
                continue
            sample_id = f"sqa3d-{record.scene_id}-{record.question_id}"
            rng = sample_rng(self.settings.seed, sample_id)
            situation = pick(rng, (record.situation, *record.alternative_situations)).strip()
            prompt = f"{situation} {record.question.strip()}{QA_SUFFIX}"
            answer = qa_answer(pick(rng, record.answers) if self.train else record.answers[0])
            sqa_type = sqa3d_question_type(record.question)
            extras = {
                "question_id": record.question_id,
                "refs": list(record.answers),
                "sqa_type": sqa_type,
                "question_type": SQA3D_QUESTION_TYPES[sqa_type],
            }
            self.add("sqa3d", [self.make(sample_id, scene, "sqa3d", prompt, answer, (), extras)])

    def scanrefer(self) -> None:
        for record in self.benchmarks.scanrefer:
            scene = self.scene("scanrefer", record.scene_id)
            if scene is None:
                continue
            match = match_object(scene, record.object_id)
            reason = self.target_reason(scene, record.object_id, match)
            if reason is not None and (self.train or reason == "unknown_object"):
                self.drop("scanrefer", reason, record.scene_id, record.object_id)
                continue
            sample_id = f"scanrefer-{record.scene_id}-{record.object_id}-{record.ann_id}"
            template = pick(sample_rng(self.settings.seed, sample_id), GROUNDING_TEMPLATES)
            prompt = template.replace("<description>", strip_description(record.description))
            targets = () if match.marker_id is None else (match.marker_id,)
            answer = f"{object_token(targets[0])}." if targets else ""
            extras = {
                "object_id": record.object_id,
                "ann_id": record.ann_id,
                "gt_box": scene.gt_boxes[record.object_id].tolist(),
                "unique": self.benchmarks.scanrefer_unique.get((record.scene_id, record.object_id), False),
                "pred_id": match.marker_id,
                "iou": match.iou,
                **self.boxes_fields(scene),
            }
            self.add("scanrefer", [self.make(sample_id, scene, "scanrefer", prompt, answer, targets, extras)])

    def multi3drefer_targets(self, scene: SceneContext, record: Multi3DReferRecord) -> list[int] | None:
        """The marker IDs of a query's targets; None (counted as dropped) when one cannot be used."""
        targets: list[int] = []
        for oid in record.object_ids:
            match = match_object(scene, oid)
            reason = self.target_reason(scene, oid, match)
            if reason is None and self.train and match.marker_id in targets:
                reason = "duplicate_marker"
            if reason is not None and (self.train or reason == "unknown_object"):
                self.drop("multi3drefer", reason, record.scene_id, oid)
                return None
            if match.marker_id is not None and match.marker_id not in targets:
                targets.append(match.marker_id)
        return targets

    def multi3drefer(self) -> None:
        for record in self.benchmarks.multi3drefer:
            scene = self.scene("multi3drefer", record.scene_id)
            if scene is None:
                continue
            targets = self.multi3drefer_targets(scene, record)
            if targets is None:
                continue
            sample_id = f"multi3drefer-{record.scene_id}-{record.ann_id}"
            template = pick(sample_rng(self.settings.seed, sample_id), MULTI3DREFER_TEMPLATES)
            prompt = template.replace("<description>", strip_description(record.description))
            extras = {
                "ann_id": record.ann_id,
                "eval_type": record.eval_type,
                "object_ids": list(record.object_ids),
                "gt_boxes": [scene.gt_boxes[oid].tolist() for oid in record.object_ids],
                **self.boxes_fields(scene),
            }
            answer = multi3drefer_answer(targets)
            self.add(
                "multi3drefer", [self.make(sample_id, scene, "multi3drefer", prompt, answer, sorted(targets), extras)]
            )

    def scan2cap(self) -> None:
        by_scene: dict[str, list[Any]] = {}
        for obj in self.benchmarks.scan2cap:
            by_scene.setdefault(obj.scene_id, []).append(obj)
        for scene_id, objects in sorted(by_scene.items()):
            scene = self.scenes.get(scene_id)
            matches = match_scan2cap(scene, [o.object_id for o in objects]) if scene is not None else {}
            for obj in objects:
                if self.scene("scan2cap", scene_id) is None:
                    continue
                captions = [capitalize_sentences(d) for d in obj.descriptions]
                self.corpus[obj.key] = captions
                match = matches.get(obj.object_id)
                if obj.object_id not in scene.gt_boxes:
                    self.drop("scan2cap", "unknown_object", scene_id, obj.object_id)
                    continue
                if match is None:
                    self.drop("scan2cap", "no_marker")
                    continue
                if self.train and scene.source != "gt" and match.iou < self.settings.iou_threshold:
                    self.drop("scan2cap", "low_iou")
                    continue
                base = f"scan2cap-{scene_id}-{obj.object_id}"
                token = object_token(match.marker_id)
                if self.train:
                    pairs = [(f"{base}-{ann_id}", caption) for ann_id, caption in zip(obj.ann_ids, captions)]
                else:
                    pairs = [(base, captions[0])]
                extras = {
                    "key": obj.key,
                    "object_id": obj.object_id,
                    "refs": captions,
                    "pred_id": match.marker_id,
                    "iou": match.iou,
                    "gt_box": scene.gt_boxes[obj.object_id].tolist(),
                    **self.boxes_fields(scene),
                }
                samples = []
                for sample_id, caption in pairs:
                    template = pick(sample_rng(self.settings.seed, sample_id), SCAN2CAP_TEMPLATES)
                    prompt = template.replace("<id>", token)
                    samples.append(self.make(sample_id, scene, "scan2cap", prompt, caption, (match.marker_id,), extras))
                self.add("scan2cap", samples)


# Per task: the builder method that turns every record of ``Benchmarks.<task>`` into samples.
TASK_BUILDERS: dict[str, Callable[[_Builder], None]] = {
    "scanqa": _Builder.scanqa,
    "sqa3d": _Builder.sqa3d,
    "scanrefer": _Builder.scanrefer,
    "multi3drefer": _Builder.multi3drefer,
    "scan2cap": _Builder.scan2cap,
}


def build_samples(
    benchmarks: Benchmarks, scenes: Mapping[str, SceneContext], settings: BuildSettings = BuildSettings()
) -> SampleSet:
    """Every sample of ``settings.tasks`` from ``benchmarks`` over the built ``scenes`` (scene id → context).

    Records of scenes not in ``scenes`` are counted as dropped (``scene_unavailable``), as are targets that cannot be
    used (``unknown_object``: not in the aggregation; ``no_marker``; ``low_iou``; ``duplicate_marker``). Samples
    come back sorted by ``sample_id``; ids are unique.
    """
    if benchmarks.split != settings.split:
        raise ValueError(f"benchmarks are split {benchmarks.split!r} but settings ask for {settings.split!r}")
    builder = _Builder(benchmarks, scenes, settings)
    for task in settings.tasks:
        TASK_BUILDERS[task](builder)
    samples = sorted(builder.samples, key=lambda s: s.sample_id)
    repeated = [sid for sid, n in Counter(s.sample_id for s in samples).items() if n > 1]
    if repeated:
        raise ValueError(f"duplicate sample ids: {sorted(repeated)[:10]}")
    return SampleSet(settings, samples, builder.stats, dict(sorted(builder.corpus.items())))
