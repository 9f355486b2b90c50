"""GPT4Scene samples: benchmark annotations + per-scene visual prompts → one (images, prompt, answer) row each.

Prompts and answers are written as GPT4Scene's training data writes them, i.e. Chat-Scene's conventions
(GPT4SCENE.md §2.2). The three template lists are verbatim copies of Chat-Scene ``prompts/prompts.py``
(``grounding_prompt``, ``multi3dref_prompt``, ``scan2cap_prompt``, the lists its ``preprocess/prepare_*_annos.py``
scripts draw from); per-task rules follow those scripts:

- ScanQA: ``{question} Answer the question using a single word or phrase.``; train: one sample per *distinct*
  answer of a question, in published order (Chat-Scene skips only an answer equal to the previous one; real
  ScanQA answer lists are short, so both give the same rows except for non-adjacent repeats).
- SQA3D: ``{situation} {question} Answer ...``; the situation is drawn from ``situation`` +
  ``alternative_situation`` and (train) one answer from the answers, both by the per-sample RNG.
- ScanRefer: one of 9 grounding templates with the description (trailing whitespace and one trailing punctuation
  mark removed) → ``<OBJ012>.``.
- Multi3DRefer: one of 10 templates → ``No.`` / ``Yes. <OBJ003>.`` / ``Yes. <OBJ003> and <OBJ017>.`` /
  ``Yes. <OBJ001>, <OBJ004>, and <OBJ009>.`` (IDs sorted). Train drops a query if any target is unmatched or two
  targets match the same ID.
- Scan2Cap: one of 10 templates naming ``<OBJ###>`` of the object's matched ID → the ScanRefer description with
  every sentence capitalised (Python ``str.capitalize``, sentences split after ``.``/``!``/``?``; Chat-Scene uses
  ``nltk.sent_tokenize``, which is not installed). Train: one sample per description; val: one per object.
- QA answers: ``str.capitalize`` (as Chat-Scene: it also lower-cases the rest) plus a final ``.``.

Object IDs (``<OBJ{id:03d}>``) are rows of the scene's ``instances/boxes.npy``. Targets map to IDs by
``match_object``: with ``gt`` instances through ``labels.json`` ``object_id``; with ``proposals``/``clusters`` to
the proposal of highest 3D IoU with the GT box (Chat-Scene), kept for training if IoU >= ``iou_threshold``. Val
keeps every query whose targets have GT boxes (the best match gives the reference answer, empty when the scene has no
candidate ID) and adds what evaluation needs (``Sample.eval``). GT boxes come from every aggregation object
(``ops.scannet.scene`` ``objects()``).

Images (relative to the storage root), by variant:
- ``marked``: ``bev/bev.png`` first, then ``frames/frame_00.jpg`` .. in sampling order (the GPT4Scene input);
- ``no_bev``: the marked frames only (the "w/o BEV" ablation);
- ``unmarked``: the unmarked frames ``frames/raw_XX.jpg`` only (no unmarked BEV is rendered), i.e. "video only":
  train on ``marked`` and evaluate on ``unmarked`` for "trained with markers, evaluated without". Grounding and
  captioning prompts still name ``<OBJ###>`` IDs, which the unmarked images do not show.
The user text is one ``<image>`` per image, then the prompt (images first, as GPT4Scene's evaluation sends them).

Every random choice (template, situation, answer) comes from ``sample_rng(seed, sample_id)``, so a sample does not
depend on which other samples are built.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ops.core.atomic import write_text
from ops.core.errors import SceneInputError
from ops.core.fingerprint import sha256_hex
from ops.dataset.annotations import (
    FILE_NAMES,
    IMAGE_PLACEHOLDER,
    Benchmarks,
    Multi3DReferRecord,
    ScanQARecord,
    ScanReferRecord,
    SQA3DRecord,
    read_json_file,
)
from ops.metrics.answers import SQA3D_QUESTION_TYPES, sqa3d_question_type
from ops.prompts.instances import box_iou_3d
from ops.scannet.scene import open_scene
from ops.scannet.scene_id import validate_scene_id

TASKS = ("scanqa", "sqa3d", "scanrefer", "multi3drefer", "scan2cap")
VARIANTS = ("marked", "no_bev", "unmarked")
SPLITS = ("train", "val")
MAX_REPORTED = 20  # unknown-object annotations listed per task (all are counted)
ID_FORMAT = "<OBJ{:03d}>"
QA_SUFFIX = " Answer the question using a single word or phrase."

GROUNDING_TEMPLATES = (
    'Share the ID of the object that best fits the description "<description>".',
    'Kindly provide the ID of the object that closely matches the description "<description>".',
    'What is the ID of the object that aligns with the description "<description>"?',
    'Identify the ID of the object that closely resembles the description "<description>".',
    'What\'s the ID of the object that corresponds to the description "<description>"?',
    'Give the ID of the object that most accurately describes the description "<description>".',
    'Share the ID of the object that best corresponds to the description "<description>".',
    'Identify the ID of the object that closely aligns with the description "<description>".',
    'What is the ID of the object that matches the description "<description>"?',
)
MULTI3DREFER_TEMPLATES = (
    'Are there any objects fitting the description of "<description>"? If so, kindly provide the IDs for those '
    "objects.",
    'Do any objects match the description of "<description>"? If they do, please share the IDs of those objects.',
    'Is there anything that matches the description "<description>"? If yes, please share the IDs of those objects.',
    'Are there objects that correspond to the description "<description>"? If there are, kindly list their IDs.',
    'Does anything fit the description of "<description>"? If it does, could you list the IDs for those objects?',
    'Are there objects described as "<description>"? If there are, please provide the IDs for those objects.',
    'Have any objects been described as "<description>"? If so, please share the IDs of those objects.',
    'Do any objects meet the criteria of "<description>"? If they do, kindly provide the IDs of those objects.',
    'Are there objects with the attributes of "<description>"? If there are, please list their IDs.',
    'Are there any objects that correspond to the description "<description>"? If yes, could you share the IDs for '
    "those objects?",
)
SCAN2CAP_TEMPLATES = (
    "Begin by detailing the visual aspects of the <id> before delving into its spatial context among other elements "
    "within the scene.",
    "First, depict the physical characteristics of the <id>, followed by its placement and interactions within the "
    "surrounding environment.",
    "Describe the appearance of the <id>, then elaborate on its positioning relative to other objects in the scene.",
    "Paint a picture of the visual attributes of <id>, then explore how it relates spatially to other elements in the "
    "scene.",
    "Start by articulating the outward features of the <id>, then transition into its spatial alignment within the "
    "broader scene.",
    "Provide a detailed description of the appearance of <id> before analyzing its spatial connections with other "
    "elements in the scene.",
    "Capture the essence of the appearance of <id>, then analyze its spatial relationships within the scene's context.",
    "Detail the physical characteristics of the <id> and subsequently examine its spatial dynamics amidst other "
    "objects in the scene.",
    "Describe the visual traits of <id> first, then elucidate its spatial arrangements in relation to neighboring "
    "elements.",
    "Begin by outlining the appearance of <id>, then proceed to illustrate its spatial orientation within the scene "
    "alongside other objects.",
)


# -- text formats -------------------------------------------------------------------------------------------------


def object_token(marker_id: int) -> str:
    """``<OBJ012>`` for ID 12."""
    return ID_FORMAT.format(int(marker_id))


def qa_answer(answer: str) -> str:
    """A QA target as Chat-Scene writes it: ``str.capitalize`` and a final period (``brown`` → ``Brown.``)."""
    text = answer.strip().capitalize()
    return text if text.endswith(".") else text + "."


def capitalize_sentences(text: str) -> str:
    """Every sentence ``str.capitalize``d, joined by one space (Scan2Cap targets)."""
    return " ".join(s.capitalize() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s)


def strip_description(description: str) -> str:
    """A description as grounding prompts quote it: trailing whitespace and one final punctuation mark removed."""
    text = description.strip()
    return (text[:-1] if text and text[-1] in string.punctuation else text).rstrip()


def multi3drefer_answer(marker_ids: Iterable[int]) -> str:
    """``No.`` / ``Yes. <OBJ003>.`` / ``Yes. <OBJ003> and <OBJ017>.`` / ``Yes. <OBJ001>, <OBJ004>, and <OBJ009>.``"""
    tokens = [object_token(i) for i in sorted(marker_ids)]
    if not tokens:
        return "No."
    if len(tokens) == 1:
        return f"Yes. {tokens[0]}."
    if len(tokens) == 2:
        return f"Yes. {tokens[0]} and {tokens[1]}."
    return f"Yes. {', '.join(tokens[:-1])}, and {tokens[-1]}."


def sample_rng(seed: int, sample_id: str) -> np.random.Generator:
    """The RNG of one sample: seeded by ``seed`` and a hash of ``sample_id``."""
    digest = int.from_bytes(hashlib.sha256(sample_id.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([int(seed), digest])


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


# -- samples ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Sample:
    """One training/eval row. ``images`` are paths relative to the storage root, in the order the model sees them;
    ``eval`` holds (val only) what scoring needs, JSON-ready."""

    sample_id: str
    scene_id: str
    task: str
    prompt: str
    answer: str
    target_ids: tuple[int, ...]
    images: tuple[str, ...]
    eval: dict[str, Any] | None = None

    @property
    def user_text(self) -> str:
        """One ``<image>`` per image, then the prompt."""
        return IMAGE_PLACEHOLDER * len(self.images) + self.prompt

    def messages(self) -> list[dict[str, str]]:
        """The conversation: the user turn, then the assistant's answer."""
        return [{"role": "user", "content": self.user_text}, {"role": "assistant", "content": self.answer}]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sample_id": self.sample_id,
            "scene_id": self.scene_id,
            "task": self.task,
            "prompt": self.prompt,
            "answer": self.answer,
            "target_ids": list(self.target_ids),
            "images": list(self.images),
            "eval": self.eval,
        }

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Sample:
        return cls(
            str(row["sample_id"]),
            str(row["scene_id"]),
            str(row["task"]),
            str(row["prompt"]),
            str(row["answer"]),
            tuple(int(i) for i in row["target_ids"]),
            tuple(str(p) for p in row["images"]),
            row.get("eval"),
        )


def samples_jsonl(samples: Iterable[Sample]) -> str:
    """One sorted-key, compact JSON object per line (the samples file format)."""
    lines = (json.dumps(s.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":")) for s in samples)
    return "".join(line + "\n" for line in lines)


def write_samples_jsonl(path: str | Path, samples: Iterable[Sample]) -> None:
    """``samples_jsonl`` written atomically."""
    write_text(path, samples_jsonl(samples))


def read_samples_jsonl(path: str | Path) -> list[Sample]:
    """Samples written by ``write_samples_jsonl``; a bad line raises ``SceneInputError`` naming file and line."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SceneInputError(None, path, f"cannot read samples: {exc}") from exc
    samples = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            samples.append(Sample.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise SceneInputError(None, path, f"line {number}: not a sample ({exc})") from exc
    return samples


# -- per-scene inputs ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SceneContext:
    """What samples need from one scene: marker boxes and their ScanNet ids, GT boxes, image paths.

    ``boxes`` [K,6] (centre, size; aligned frame, metres), row k = marker ID k; ``object_ids[k]`` its ScanNet
    objectId (``gt`` instances) or None; ``gt_boxes`` objectId → GT box of every aggregation object with points.
    Paths are relative to the storage root.
    """

    scene_id: str
    source: str
    boxes: np.ndarray
    object_ids: tuple[int | None, ...]
    gt_boxes: dict[int, np.ndarray]
    bev: str
    frames: tuple[str, ...]
    raw_frames: tuple[str, ...]
    boxes_path: str
    boxes_sha256: str

    def images(self, variant: str) -> tuple[str, ...]:
        """The image list of ``variant`` (see the module docstring)."""
        if variant == "marked":
            return (self.bev, *self.frames)
        if variant == "no_bev":
            return self.frames
        if variant == "unmarked":
            return self.raw_frames
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def load_scene_context(root: str | Path, raw_scene_dir: str | Path) -> SceneContext:
    """Read ``<root>/scenes/<scene_id>/`` (instances, BEV, frames) and the raw scene's GT boxes.

    Missing or inconsistent artifacts raise ``SceneInputError`` naming the scene and the file.
    """
    root = Path(root)
    raw = open_scene(raw_scene_dir)
    scene_id = validate_scene_id(raw.scene_id)
    rel = Path("scenes") / scene_id
    scene_dir = root / rel

    def fail(path: Path, reason: str) -> SceneInputError:
        return SceneInputError(scene_id, path, reason)

    labels_path = scene_dir / "instances" / "labels.json"
    labels = read_json_file(labels_path) if labels_path.is_file() else None
    if not isinstance(labels, dict) or not isinstance(labels.get("objects"), list) or "source" not in labels:
        raise fail(labels_path, "missing, or not {'source': ..., 'objects': [...]}")
    boxes_path = scene_dir / "instances" / "boxes.npy"
    try:
        boxes_bytes = boxes_path.read_bytes()
        boxes = np.load(io.BytesIO(boxes_bytes), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise fail(boxes_path, f"cannot read boxes: {exc}") from exc
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 6) if boxes.size == 0 else np.asarray(boxes, np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 6 or not np.isfinite(boxes).all():
        raise fail(boxes_path, f"expected finite [K,6] boxes, got shape {boxes.shape}")
    if len(labels["objects"]) != len(boxes):
        raise fail(labels_path, f"{len(labels['objects'])} label rows for {len(boxes)} boxes")
    object_ids = []
    for k, row in enumerate(labels["objects"]):
        value = row.get("object_id") if isinstance(row, dict) else None
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise fail(labels_path, f"objects[{k}].object_id must be an integer or null, got {value!r}")
        object_ids.append(value)

    frames_path = scene_dir / "frames" / "frames.json"
    meta = read_json_file(frames_path) if frames_path.is_file() else None
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list) or not meta["frames"]:
        raise fail(frames_path, "missing, or no 'frames' list")
    frames, raw_frames = [], []
    for entry in meta["frames"]:
        name = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not re.fullmatch(r"frame_\d+\.jpg", name):
            raise fail(frames_path, f"frame entry {entry!r} has no 'file' named frame_XX.jpg")
        frames.append(rel / "frames" / name)
        raw_frames.append(rel / "frames" / name.replace("frame_", "raw_", 1))
    bev = rel / "bev" / "bev.png"
    for path in (bev, *frames, *raw_frames):
        if not (root / path).is_file():
            raise fail(root / path, "image missing")

    gt_boxes = {int(o["object_id"]): np.asarray(o["box"], np.float64) for o in raw.objects() if o["box"] is not None}
    return SceneContext(
        scene_id,
        str(labels["source"]),
        boxes,
        tuple(object_ids),
        gt_boxes,
        bev.as_posix(),
        tuple(p.as_posix() for p in frames),
        tuple(p.as_posix() for p in raw_frames),
        (rel / "instances" / "boxes.npy").as_posix(),
        sha256_hex(boxes_bytes),
    )


# -- object ID mapping --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectMatch:
    """The marker ID a ScanNet object maps to (None: no candidate) and the 3D IoU of their boxes."""

    marker_id: int | None
    iou: float


def match_object(scene: SceneContext, object_id: int) -> ObjectMatch:
    """``gt`` instances: the row whose ``object_id`` is the object's; otherwise the proposal of highest IoU with the
    object's GT box (first on ties). An object without a GT box never matches."""
    gt = scene.gt_boxes.get(object_id)
    if gt is None or len(scene.boxes) == 0:
        return ObjectMatch(None, 0.0)
    if scene.source == "gt":
        rows = [k for k, oid in enumerate(scene.object_ids) if oid == object_id]
        if not rows:
            return ObjectMatch(None, 0.0)
        return ObjectMatch(rows[0], round(float(box_iou_3d(scene.boxes[rows[0]], gt)), 6))
    ious = box_iou_3d(scene.boxes, gt[None, :])
    best = int(np.argmax(ious))
    return ObjectMatch(best, round(float(ious[best]), 6))


def match_scan2cap(scene: SceneContext, object_ids: Iterable[int]) -> dict[int, ObjectMatch]:
    """Scan2Cap's object → ID matching over the described ``object_ids``.

    ``gt`` instances: as ``match_object``. Proposals (Chat-Scene ``prepare_scan2cap_annos.py``): every proposal
    picks the described object of highest IoU; each object keeps the proposal that picked it with the highest IoU.
    Objects no proposal overlaps are left out.
    """
    described = sorted(oid for oid in set(object_ids) if oid in scene.gt_boxes)
    if scene.source == "gt":
        matches = {oid: match_object(scene, oid) for oid in described}
        return {oid: m for oid, m in matches.items() if m.marker_id is not None}
    if not described or len(scene.boxes) == 0:
        return {}
    gt = np.stack([scene.gt_boxes[oid] for oid in described])
    ious = box_iou_3d(scene.boxes[:, None, :], gt[None, :, :])  # [K proposals, G objects]
    out: dict[int, ObjectMatch] = {}
    for k in range(len(scene.boxes)):
        g = int(np.argmax(ious[k]))
        iou = round(float(ious[k, g]), 6)
        if iou > 0 and (described[g] not in out or iou > out[described[g]].iou):
            out[described[g]] = ObjectMatch(k, iou)
    return dict(sorted(out.items()))


# -- building -----------------------------------------------------------------------------------------------------


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
    dropped: Counter[str] = field(default_factory=Counter)
    unknown_objects: list[str] = field(default_factory=list)  # "<file>: scene <id> has no object <n>", first 20

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "kept": self.kept,
            "samples": self.samples,
            "dropped": sum(self.dropped.values()),
            "dropped_by_reason": dict(sorted(self.dropped.items())),
            "unknown_objects": self.unknown_objects,
        }


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
            self.stats[task].dropped["scene_unavailable"] += 1
        return scene

    def drop(self, task: str, reason: str, scene_id: str = "", object_id: int = -1) -> None:
        stats = self.stats[task]
        stats.dropped[reason] += 1
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
    def scanqa(self, record: ScanQARecord) -> None:
        scene = self.scene("scanqa", record.scene_id)
        if scene is None:
            return
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
                self.make(f"{base}-{n}", scene, "scanqa", prompt, qa_answer(a), targets) for n, a in enumerate(answers)
            ]
        else:
            extras = {
                "question_id": record.question_id,
                "refs": list(record.answers),
                "object_ids": list(record.object_ids),
            }
            samples = [self.make(base, scene, "scanqa", prompt, qa_answer(answers[0]), targets, extras)]
        self.add("scanqa", samples)

    def sqa3d(self, record: SQA3DRecord) -> None:
        scene = self.scene("sqa3d", record.scene_id)
        if scene is None:
            return
        sample_id = f"sqa3d-{record.scene_id}-{record.question_id}"
        rng = sample_rng(self.settings.seed, sample_id)
        situation = _pick(rng, (record.situation, *record.alternative_situations)).strip()
        prompt = f"{situation} {record.question.strip()}{QA_SUFFIX}"
        answer = qa_answer(_pick(rng, record.answers) if self.train else record.answers[0])
        sqa_type = sqa3d_question_type(record.question)
        extras = {
            "question_id": record.question_id,
            "refs": list(record.answers),
            "sqa_type": sqa_type,
            "question_type": SQA3D_QUESTION_TYPES[sqa_type],
        }
        self.add("sqa3d", [self.make(sample_id, scene, "sqa3d", prompt, answer, (), extras)])

    def scanrefer(self, record: ScanReferRecord) -> None:
        scene = self.scene("scanrefer", record.scene_id)
        if scene is None:
            return
        match = match_object(scene, record.object_id)
        reason = self.target_reason(scene, record.object_id, match)
        if reason is not None and (self.train or reason == "unknown_object"):
            self.drop("scanrefer", reason, record.scene_id, record.object_id)
            return
        sample_id = f"scanrefer-{record.scene_id}-{record.object_id}-{record.ann_id}"
        template = _pick(sample_rng(self.settings.seed, sample_id), GROUNDING_TEMPLATES)
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

    def multi3drefer(self, record: Multi3DReferRecord) -> None:
        scene = self.scene("multi3drefer", record.scene_id)
        if scene is None:
            return
        targets: list[int] = []
        for oid in record.object_ids:
            match = match_object(scene, oid)
            reason = self.target_reason(scene, oid, match)
            if reason is None and self.train and match.marker_id in targets:
                reason = "duplicate_marker"
            if reason is not None and (self.train or reason == "unknown_object"):
                self.drop("multi3drefer", reason, record.scene_id, oid)
                return
            if match.marker_id is not None and match.marker_id not in targets:
                targets.append(match.marker_id)
        sample_id = f"multi3drefer-{record.scene_id}-{record.ann_id}"
        template = _pick(sample_rng(self.settings.seed, sample_id), MULTI3DREFER_TEMPLATES)
        prompt = template.replace("<description>", strip_description(record.description))
        extras = {
            "ann_id": record.ann_id,
            "eval_type": record.eval_type,
            "object_ids": list(record.object_ids),
            "gt_boxes": [scene.gt_boxes[oid].tolist() for oid in record.object_ids],
            **self.boxes_fields(scene),
        }
        answer = multi3drefer_answer(targets)
        self.add("multi3drefer", [self.make(sample_id, scene, "multi3drefer", prompt, answer, sorted(targets), extras)])

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
                    template = _pick(sample_rng(self.settings.seed, sample_id), SCAN2CAP_TEMPLATES)
                    prompt = template.replace("<id>", token)
                    samples.append(self.make(sample_id, scene, "scan2cap", prompt, caption, (match.marker_id,), extras))
                self.add("scan2cap", samples)


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
    if "scanqa" in settings.tasks:
        for r in benchmarks.scanqa:
            builder.scanqa(r)
    if "sqa3d" in settings.tasks:
        for r in benchmarks.sqa3d:
            builder.sqa3d(r)
    if "scanrefer" in settings.tasks:
        for r in benchmarks.scanrefer:
            builder.scanrefer(r)
    if "multi3drefer" in settings.tasks:
        for r in benchmarks.multi3drefer:
            builder.multi3drefer(r)
    if "scan2cap" in settings.tasks:
        builder.scan2cap()
    samples = sorted(builder.samples, key=lambda s: s.sample_id)
    repeated = [sid for sid, n in Counter(s.sample_id for s in samples).items() if n > 1]
    if repeated:
        raise ValueError(f"duplicate sample ids: {sorted(repeated)[:10]}")
    return SampleSet(settings, samples, builder.stats, dict(sorted(builder.corpus.items())))
