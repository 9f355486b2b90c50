"""SQA3D annotations for synthetic scenes: situations (positions in free space facing a direction) and the questions
asked from them.

Answers use bearings from the situation's pose with a 12° margin around the sector borders (front/left/right/behind),
so no answer sits on a boundary. SQA3D ``position`` is in the aligned frame (metres, z = 0 on the floor);
``rotation`` is the quaternion of a rotation about +Z that turns +X onto the agent's facing direction;
``question_id`` is a dataset-wide integer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ops.synthetic.facts import NUMBER_WORDS, SITTABLE, SYMMETRIC, SceneFacts, half_along, noun, on_floor, plural
from ops.synthetic.truth import ObjectTruth

SECTOR_MARGIN = 12.0
SQA_FILES = ("v1_balanced_questions_{split}_scannetv2.json", "v1_balanced_sqa_annotations_{split}_scannetv2.json")


@dataclass(frozen=True)
class Situation:
    text: str
    alternatives: tuple[str, ...]
    position: np.ndarray  # xy, aligned frame
    heading: np.ndarray  # unit xy
    anchor: ObjectTruth
    standing: bool


def _sector(bearing: float) -> str | None:
    """front/left/right/behind for a bearing in degrees (+ = left), None within the margin of a border."""
    m = SECTOR_MARGIN
    if abs(bearing) <= 45 - m:
        return "front"
    if 45 + m <= bearing <= 135 - m:
        return "left"
    if -135 + m <= bearing <= -45 - m:
        return "right"
    if abs(bearing) >= 135 + m:
        return "behind"
    return None


SECTOR_PHRASE = {"front": "in front of me", "left": "on my left", "right": "on my right", "behind": "behind me"}
SECTOR_DIRECTION = {"front": "forward", "left": "left", "right": "right", "behind": "backward"}


def _situations(sf: SceneFacts) -> list[Situation]:
    width, depth, _ = sf.scene.room_size
    half = np.array([width / 2, depth / 2])
    floor_objects = [o for o in sf.objects if on_floor(o)]

    def free(point: np.ndarray, ignore: ObjectTruth) -> bool:
        if np.any(np.abs(point) > half - 0.3):
            return False
        return not any(
            np.all(point > o.aabb_min[:2] - 0.15) and np.all(point < o.aabb_max[:2] + 0.15)
            for o in floor_objects
            if o.object_id != ignore.object_id
        )

    out = []
    for obj in floor_objects:
        ref = sf.first_reference(obj)
        if ref is None or obj.front is None:
            continue
        if obj.label in SITTABLE:
            out.append(
                Situation(
                    f"I am sitting on the {ref}.",
                    (f"I am taking a seat on the {ref}.",),
                    obj.center[:2],
                    obj.front,
                    obj,
                    standing=False,
                )
            )
        if obj.label in SYMMETRIC:
            continue
        reach = half_along(obj, obj.front)
        position = obj.center[:2] + obj.front * (reach + 0.6)
        path = [obj.center[:2] + obj.front * (reach + s) for s in np.arange(0.05, 0.61, 0.05)]
        if all(free(p, obj) for p in path):
            out.append(
                Situation(
                    f"I am standing in front of the {ref} and facing it.",
                    (f"I am facing the {ref} while standing right in front of it.",),
                    position,
                    -obj.front,
                    obj,
                    standing=True,
                )
            )
    return out


def sqa3d_entries(sf: SceneFacts, rng: np.random.Generator, first_id: int) -> tuple[list[dict], list[dict]]:
    """SQA3D (questions, annotations) for up to three situations; question ids count up from ``first_id``."""
    candidates = _situations(sf)
    if not candidates:
        return [], []
    picks = sorted(rng.choice(len(candidates), size=min(3, len(candidates)), replace=False).tolist())
    questions, annotations = [], []
    for situation in (candidates[i] for i in picks):
        for question, answer in _situated_questions(sf, situation, rng):
            qid = first_id + len(questions)
            yaw = float(np.arctan2(situation.heading[1], situation.heading[0]))
            x, y = (round(float(v), 4) for v in situation.position)
            qz, qw = round(float(np.sin(yaw / 2)), 6), round(float(np.cos(yaw / 2)), 6)
            questions.append(
                {
                    "scene_id": sf.scene.scene_id,
                    "situation": situation.text,
                    "alternative_situation": list(situation.alternatives),
                    "question": question,
                    "question_id": qid,
                }
            )
            answer_type = "yes/no" if answer in ("yes", "no") else "number" if answer in NUMBER_WORDS else "other"
            annotations.append(
                {
                    "scene_id": sf.scene.scene_id,
                    "question_id": qid,
                    "question_type": question.split()[0].lower(),
                    "answer_type": answer_type,
                    "answers": [{"answer": answer, "answer_confidence": "yes", "answer_id": 1}],
                    "position": {"x": x, "y": y, "z": 0.0},
                    "rotation": {"_x": 0.0, "_y": 0.0, "_z": qz, "_w": qw},
                }
            )
    return questions, annotations


def _situated_questions(sf: SceneFacts, situation: Situation, rng: np.random.Generator) -> list[tuple[str, str]]:
    h = situation.heading
    left = np.array([-h[1], h[0]])
    seen = []  # (sector or None, distance, object)
    for obj in sf.objects:
        on_seat = obj.object_id == situation.anchor.object_id or obj.support_id == situation.anchor.object_id
        if on_seat and not situation.standing:
            continue
        offset = obj.center[:2] - situation.position
        distance = float(np.linalg.norm(offset))
        if distance < 0.4:
            continue
        bearing = float(np.degrees(np.arctan2(offset @ left, offset @ h)))
        seen.append((_sector(bearing), distance, obj))

    def nearest(sector: str) -> ObjectTruth | None:
        """The closest object in ``sector`` within 4 m, if clearly closer (0.5 m) than any other kind there."""
        inside = sorted(((d, o.object_id, o) for s, d, o in seen if s == sector and d <= 4.0), key=lambda t: t[:2])
        if not inside:
            return None
        first = inside[0]
        if any(o.label != first[2].label and d - first[0] < 0.5 for d, _, o in inside[1:]):
            return None
        if any(s is None and abs(d - first[0]) < 0.5 for s, d, _ in seen):
            return None
        return first[2]

    qa: list[tuple[str, str]] = []
    if situation.standing:
        qa.append(("What is in front of me?", noun(situation.anchor.label)))
        anchor_ref = sf.first_reference(situation.anchor)
        qa.append((f"Am I facing the {anchor_ref}?", "yes"))
    for sector in ("left", "right", "behind"):
        obj = nearest(sector)
        question = "What is behind me?" if sector == "behind" else f"What is {SECTOR_PHRASE[sector]}?"
        if obj is not None:
            qa.append((question, noun(obj.label)))
    behind = nearest("behind")
    if behind is not None:
        qa.append(("If I turn around, what will be in front of me?", noun(behind.label)))
    for sector in ("left", "right", "behind"):
        obj = nearest(sector)
        if obj is not None:
            qa.append((f"Can I sit on the object {SECTOR_PHRASE[sector]}?", "yes" if obj.label in SITTABLE else "no"))
            break
    referable = [(s, o) for s, _, o in seen if s is not None and sf.first_reference(o)]
    if referable:
        sector, obj = referable[int(rng.integers(len(referable)))]
        asked = sector if rng.random() < 0.5 else str(rng.choice(sorted(set(SECTOR_PHRASE) - {sector})))
        qa.append((f"Is the {sf.first_reference(obj)} {SECTOR_PHRASE[asked]}?", "yes" if asked == sector else "no"))
        sector, obj = referable[int(rng.integers(len(referable)))]
        qa.append((f"Which direction should I go to reach the {sf.first_reference(obj)}?", SECTOR_DIRECTION[sector]))
    countable = sorted(
        label for label in {o.label for _, _, o in seen} if all(s is not None for s, _, o in seen if o.label == label)
    )
    if countable:
        label = countable[int(rng.integers(len(countable)))]
        occupied = sorted({s for s, _, o in seen if o.label == label})
        sector = str(rng.choice(occupied if rng.random() < 0.8 else sorted(SECTOR_PHRASE)))
        count = sum(1 for s, _, o in seen if o.label == label and s == sector)
        qa.append((f"How many {plural(label)} are {SECTOR_PHRASE[sector]}?", NUMBER_WORDS[count]))
    return qa


def _sqa_header(split: str) -> dict:
    return {
        "info": {"description": "Synthetic SQA3D-format annotations (GPT4Scene pipeline)", "version": "1.0"},
        "license": {"name": "Apache-2.0"},
        "data_type": "scannetv2",
        "data_subtype": split,
    }


def sqa3d_documents(split: str, questions: list[dict], annotations: list[dict]) -> dict[str, dict]:
    """The two SQA3D files of one split, by file name: the questions and their annotations."""
    return {
        SQA_FILES[0].format(split=split): {
            **_sqa_header(split),
            "task_type": "situated question answering",
            "questions": questions,
        },
        SQA_FILES[1].format(split=split): {**_sqa_header(split), "annotations": annotations},
    }
