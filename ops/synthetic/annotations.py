"""Benchmark annotations for synthetic scenes, in the published schemas (SCANNET_METRICS_PEERS.md §1.7).

Every statement is derived from the generated geometry (``SceneTruth``, aligned frame), so it is true:

- facts per object: its colour, ``on``/``supports`` (what stands on what), ``next_to`` (footprints within
  0.45 m and overlapping heights), ``left_of``/``right_of`` (beside an object that has a front, seen by someone
  facing it), ``front_of`` (in front of a floor object, within 1 m), ``above`` (a wall-hung object over a piece of
  furniture) and ``corner`` (within 0.4 m of two walls);
- an object is referred to by the smallest set of its facts that no other object of its category shares;
- SQA3D situations are positions in free space facing a direction; answers use bearings from that pose with a 12°
  margin around the sector borders (front/left/right/behind), so no answer sits on a boundary.

Object ids are the aggregation ``objectId``s. SQA3D ``position`` is in the aligned frame (metres, z = 0 on the
floor); ``rotation`` is the quaternion of a rotation about +Z that turns +X onto the agent's facing direction.
ScanQA ``question_id`` is ``<split>-<scene_id>-<n>``; SQA3D ``question_id`` is a dataset-wide integer.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ops.core.atomic import write_json, write_text
from ops.scannet.writers import LABEL_TSV_COLUMNS, write_label_map_tsv
from ops.synthetic.catalog import CATEGORIES, LABEL_TSV_ROWS, PALETTE
from ops.synthetic.truth import ObjectTruth, SceneTruth

NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty"
).split()
NOUNS = {"kitchen cabinets": "kitchen cabinet"}  # how a raw label reads as a singular noun in text
PLURALS = {"couch": "couches", "bookshelf": "bookshelves", "kitchen cabinets": "kitchen cabinets"}
SITTABLE = frozenset({"chair", "office chair", "armchair", "couch", "bed", "toilet"})
SYMMETRIC = frozenset({"trash can", "lamp", "pillow"})  # no meaningful front: never an anchor for left/right
NEXT_TO_GAP = 0.45
FRONT_REACH = 1.0
CORNER_GAP = 0.4
SECTOR_MARGIN = 12.0
SQA_FILES = ("v1_balanced_questions_{split}_scannetv2.json", "v1_balanced_sqa_annotations_{split}_scannetv2.json")


def noun(label: str) -> str:
    return NOUNS.get(label, label)


def plural(label: str) -> str:
    return PLURALS.get(label, label + "s")


def article(word: str) -> str:
    """'a chair', 'an office chair'."""
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def tokenize(text: str) -> list[str]:
    """ScanRefer-style tokens: lower-case words and punctuation marks."""
    return re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())


@dataclass(frozen=True, order=True)
class Fact:
    """A true statement about an object: ``kind`` with the raw label of the other object involved (if any)."""

    kind: str
    other: str = ""

    def phrase(self) -> str:
        other = noun(self.other)
        return {
            "color": other,
            "on": f"on the {other}",
            "supports": f"under the {other}",
            "next_to": f"next to the {other}",
            "left_of": f"on the left side of the {other} when you face the {other}",
            "right_of": f"on the right side of the {other} when you face the {other}",
            "front_of": f"in front of the {other}",
            "above": f"above the {other}",
            "corner": "in the corner of the room",
        }[self.kind]


def _gap_xy(a: ObjectTruth, b: ObjectTruth) -> float:
    gaps = np.maximum(0.0, np.maximum(a.aabb_min[:2] - b.aabb_max[:2], b.aabb_min[:2] - a.aabb_max[:2]))
    return float(np.linalg.norm(gaps))


def _half_along(obj: ObjectTruth, axis: np.ndarray) -> float:
    """Half the extent of the object's xy box projected on a unit axis."""
    return float(np.abs(obj.size[:2] * axis).sum() / 2)


def _on_floor(obj: ObjectTruth) -> bool:
    return obj.support_id is None and not obj.wall_hung


class SceneFacts:
    """All facts about one scene's objects (walls and floor excluded), and unique references built from them."""

    def __init__(self, scene: SceneTruth):
        self.scene = scene
        self.objects = [o for o in scene.objects if not o.is_structure]
        self.by_label: dict[str, list[ObjectTruth]] = {}
        for obj in self.objects:
            self.by_label.setdefault(obj.label, []).append(obj)
        # pair_kinds[(a, b)]: the relation kinds that hold from object a to object b ("a is next_to b").
        self.pair_kinds: dict[tuple[int, int], set[str]] = {}
        for a in self.objects:
            for b in self.objects:
                if a.object_id != b.object_id:
                    kinds = self._relations_between(a, b)
                    if kinds:
                        self.pair_kinds[(a.object_id, b.object_id)] = kinds
        self.facts: dict[int, frozenset[Fact]] = {o.object_id: self._facts_of(o) for o in self.objects}

    def related(self, kind: str, b: ObjectTruth) -> list[ObjectTruth]:
        """The objects a for which "a <kind> b" holds, e.g. everything next to ``b``."""
        return [a for a in self.objects if kind in self.pair_kinds.get((a.object_id, b.object_id), ())]

    def _relations_between(self, a: ObjectTruth, b: ObjectTruth) -> set[str]:
        kinds = set()
        if a.support_id == b.object_id:
            kinds.add("on")
        if b.support_id == a.object_id:
            kinds.add("supports")
        heights_overlap = a.aabb_min[2] < b.aabb_max[2] and b.aabb_min[2] < a.aabb_max[2]
        next_to = not kinds and heights_overlap and _gap_xy(a, b) <= NEXT_TO_GAP
        if next_to:
            kinds.add("next_to")
        if b.front is not None and not b.wall_hung and b.label not in SYMMETRIC:
            offset = a.center[:2] - b.center[:2]
            left_axis = np.array([b.front[1], -b.front[0]])  # the left hand of someone facing b
            forward, lateral = float(offset @ b.front), float(offset @ left_axis)
            half_forward, half_lateral = _half_along(b, b.front), _half_along(b, left_axis)
            if next_to and abs(forward) < half_forward + 0.3 and abs(lateral) > half_lateral:
                kinds.add("left_of" if lateral > 0 else "right_of")
            if (
                _on_floor(a)
                and _on_floor(b)
                and forward > half_forward
                and abs(lateral) < half_lateral
                and _gap_xy(a, b) <= FRONT_REACH
            ):
                kinds.add("front_of")
        if a.wall_hung and _on_floor(b) and a.aabb_min[2] >= b.aabb_max[2]:
            if np.all(a.center[:2] > b.aabb_min[:2] - 0.35) and np.all(a.center[:2] < b.aabb_max[:2] + 0.35):
                kinds.add("above")
        return kinds

    def _facts_of(self, a: ObjectTruth) -> frozenset[Fact]:
        facts = {Fact("color", a.color)}
        for (first, second), kinds in self.pair_kinds.items():
            if first == a.object_id:
                facts.update(Fact(kind, self.scene.object(second).label) for kind in kinds)
        if _on_floor(a):
            width, depth, _ = self.scene.room_size
            half = np.array([width / 2, depth / 2])
            to_wall = np.minimum(a.aabb_min[:2] + half, half - a.aabb_max[:2])
            if np.all(to_wall <= CORNER_GAP):
                facts.add(Fact("corner"))
        return frozenset(facts)

    def matching(self, label: str, facts: Sequence[Fact]) -> list[ObjectTruth]:
        """Objects of ``label`` for which every fact holds."""
        return [o for o in self.by_label.get(label, []) if set(facts) <= self.facts[o.object_id]]

    def references(self, obj: ObjectTruth, exclude: Sequence[str] = ()) -> list[tuple[Fact, ...]]:
        """Fact sets (at most two facts, none of the ``exclude`` kinds) that single out ``obj`` in its category."""
        usable = sorted(f for f in self.facts[obj.object_id] if f.kind not in exclude)
        found = []
        for size in range(3):
            for combo in itertools.combinations(usable, size):
                if sum(f.kind == "color" for f in combo) <= 1 and len(self.matching(obj.label, combo)) == 1:
                    found.append(combo)
        return found

    def reference_text(self, obj: ObjectTruth, combo: Sequence[Fact]) -> str:
        """'red chair next to the desk' for the fact set ``combo``."""
        color = [f.other for f in combo if f.kind == "color"]
        relations = [f.phrase() for f in combo if f.kind != "color"]
        return " ".join(color + [noun(obj.label)] + ([" and ".join(relations)] if relations else []))

    def first_reference(self, obj: ObjectTruth, exclude: Sequence[str] = ()) -> str | None:
        combos = self.references(obj, exclude)
        return self.reference_text(obj, combos[0]) if combos else None


def _relations(facts: frozenset[Fact]) -> list[Fact]:
    return sorted(f for f in facts if f.kind != "color")


def scanrefer_entries(sf: SceneFacts, rng: np.random.Generator) -> list[dict]:
    """ScanRefer rows: up to two descriptions per object that single it out in its category."""
    rows = []
    for obj in sf.objects:
        combos = sf.references(obj)
        if not combos:
            continue
        picks = [combos[0]] + ([combos[int(rng.integers(1, len(combos)))]] if len(combos) > 1 else [])
        texts: list[str] = []
        name = noun(obj.label)
        for combo in picks:
            relations = [f for f in combo if f.kind != "color"]
            spare = [f for f in _relations(sf.facts[obj.object_id]) if f not in relations]
            if len(relations) < 2 and spare:
                relations.append(spare[int(rng.integers(len(spare)))])
            phrases = [f.phrase() for f in relations]
            style = int(rng.integers(3))
            if not phrases:
                text = f"this is {article(obj.color)} {name}."
                if len(sf.by_label[obj.label]) == 1:
                    text += f" it is the only {name} in the room."
            elif style == 0:
                text = f"this is {article(obj.color)} {name}. it is {phrases[0]}."
                text += f" it is also {phrases[1]}." if len(phrases) > 1 else ""
            elif style == 1:
                text = f"the {obj.color} {name} is {' and '.join(phrases)}."
            else:
                text = f"there is {article(name)} {phrases[0]}. it is {obj.color}."
                text += f" it is {phrases[1]}." if len(phrases) > 1 else ""
            if text not in texts:
                texts.append(text)
        for ann_id, text in enumerate(texts):
            rows.append(
                {
                    "scene_id": sf.scene.scene_id,
                    "object_id": str(obj.object_id),
                    "object_name": obj.name,
                    "ann_id": str(ann_id),
                    "description": text,
                    "token": tokenize(text),
                }
            )
    return rows


def scanqa_entries(sf: SceneFacts, split: str) -> list[dict]:
    """ScanQA rows: colour, counting, what is on / next to / in front of what, and where things are."""
    qa: list[tuple[str, list[str], list[ObjectTruth]]] = []
    for obj in sf.objects:
        ref = sf.first_reference(obj, exclude=("color",))
        if ref:
            qa.append((f"What color is the {ref}?", [obj.color], [obj]))
    for label in sorted(sf.by_label):
        instances = sf.by_label[label]
        if len(instances) < len(NUMBER_WORDS):
            qa.append((f"How many {plural(label)} are in the room?", [NUMBER_WORDS[len(instances)]], instances))
    for obj in sf.objects:
        on_it = [o for o in sf.objects if o.support_id == obj.object_id]
        ref = sf.first_reference(obj, exclude=("supports",))
        if on_it and ref:
            qa.append((f"What is placed on the {ref}?", sorted({noun(o.label) for o in on_it}), on_it))
        if obj.support_id is not None:
            ref = sf.first_reference(obj, exclude=("on",))
            if ref:
                support = sf.scene.object(obj.support_id)
                answers = [f"on the {noun(support.label)}", f"on top of the {noun(support.label)}"]
                qa.append((f"Where is the {ref} placed?", answers, [obj]))
        near = sf.related("next_to", obj)
        ref = sf.first_reference(obj, exclude=("next_to", "left_of", "right_of"))
        if near and ref:
            qa.append((f"What is next to the {ref}?", sorted({noun(o.label) for o in near}), near))
        ahead = sf.related("front_of", obj)
        ref = sf.first_reference(obj)
        if ahead and ref:
            qa.append((f"What is in front of the {ref}?", sorted({noun(o.label) for o in ahead}), ahead))
    return [
        {
            "scene_id": sf.scene.scene_id,
            "question_id": f"{split}-{sf.scene.scene_id}-{n}",
            "question": question,
            "answers": answers,
            "object_ids": [o.object_id for o in targets],
            "object_names": [o.name for o in targets],
        }
        for n, (question, answers, targets) in enumerate(qa)
    ]


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
    floor_objects = [o for o in sf.objects if _on_floor(o)]

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
        reach = _half_along(obj, obj.front)
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


def multi3drefer_entries(sf: SceneFacts, rng: np.random.Generator) -> list[dict]:
    """Multi3DRefer rows of all five eval types (zero/single/multiple targets, with/without distractors)."""
    rows: list[tuple[str, str, list[ObjectTruth], str]] = []  # (eval_type, label, targets, description)
    for label in sorted(sf.by_label):
        instances = sf.by_label[label]
        if len(instances) == 1:
            obj = instances[0]
            relations = _relations(sf.facts[obj.object_id])
            extra = f" {relations[int(rng.integers(len(relations)))].phrase()}" if relations else ""
            rows.append(("st_wo_d", label, [obj], f"the {obj.color} {noun(label)}{extra}."))
            continue
        for obj in instances:
            combos = sf.references(obj)
            if combos:
                combo = combos[int(rng.integers(len(combos)))]
                if not any(f.kind == "color" for f in combo):
                    combo = (Fact("color", obj.color), *combo)
                rows.append(("st_w_d", label, [obj], f"the {sf.reference_text(obj, combo)}."))
        groups = {}
        for fact in sorted(set().union(*(sf.facts[o.object_id] for o in instances))):
            matched = sf.matching(label, [fact])
            if len(matched) >= 2:
                groups[fact] = matched
        if groups:
            fact = sorted(groups)[int(rng.integers(len(groups)))]
            if fact.kind == "color":
                text = f"the {fact.other} {plural(label)}."
            else:
                text = f"the {plural(label)} {fact.phrase()}."
            rows.append(("mt", label, groups[fact], text))
        rows.append(("mt", label, instances, f"all the {plural(label)} in the room."))
    present = sorted(sf.by_label)
    absent = sorted(set(CATEGORIES) - set(present))
    for label in sorted(rng.choice(absent, size=min(2, len(absent) if present else 0), replace=False).tolist()):
        color = str(rng.choice(CATEGORIES[label].colors))
        anchor = present[int(rng.integers(len(present)))]
        rows.append(("zt_wo_d", label, [], f"the {color} {noun(label)} next to the {noun(anchor)}."))
    for label in sorted(rng.choice(present, size=min(2, len(present)), replace=False).tolist()):
        used = {o.color for o in sf.by_label[label]}
        unused = [c for c in sorted(PALETTE) if c not in used]
        rows.append(("zt_w_d", label, [], f"the {unused[int(rng.integers(len(unused)))]} {noun(label)}."))
    return [
        {
            "scene_id": sf.scene.scene_id,
            "object_id": str(targets[0].object_id) if targets else "-1",
            "object_ids": [o.object_id for o in targets],
            "object_name": label.replace(" ", "_"),
            "ann_id": str(n),
            "description": text,
            "token": tokenize(text),
            "eval_type": eval_type,
        }
        for n, (eval_type, label, targets, text) in enumerate(rows)
    ]


def _sqa_header(split: str) -> dict:
    return {
        "info": {"description": "Synthetic SQA3D-format annotations (GPT4Scene pipeline)", "version": "1.0"},
        "license": {"name": "Apache-2.0"},
        "data_type": "scannetv2",
        "data_subtype": split,
    }


def write_annotations(
    ann_dir: str | Path, scenes: Sequence[SceneTruth], train_ids: Sequence[str], val_ids: Sequence[str], seed: int
) -> dict[str, Path]:
    """Write every benchmark file for ``scenes`` into ``ann_dir``; returns {file name: path}."""
    ann_dir = Path(ann_dir)
    by_id = {s.scene_id: s for s in scenes}
    files: dict[str, Path] = {}
    next_sqa_id = 1
    for split, ids in (("train", sorted(train_ids)), ("val", sorted(val_ids))):
        scanrefer, scanqa, multi3drefer, sqa_questions, sqa_annotations = [], [], [], [], []
        for scene_id in ids:
            scene = by_id[scene_id]
            facts = SceneFacts(scene)
            rng = np.random.default_rng([int(seed), scene.seed])
            scanrefer += scanrefer_entries(facts, rng)
            scanqa += scanqa_entries(facts, split)
            multi3drefer += multi3drefer_entries(facts, rng)
            questions, annotations = sqa3d_entries(facts, rng, next_sqa_id)
            next_sqa_id += len(questions)
            sqa_questions += questions
            sqa_annotations += annotations
        contents = {
            f"ScanRefer_filtered_{split}.json": scanrefer,
            f"ScanQA_v1.0_{split}.json": scanqa,
            f"multi3drefer_{split}.json": multi3drefer,
            SQA_FILES[0].format(split=split): {
                **_sqa_header(split),
                "task_type": "situated question answering",
                "questions": sqa_questions,
            },
            SQA_FILES[1].format(split=split): {**_sqa_header(split), "annotations": sqa_annotations},
        }
        for name, content in contents.items():
            files[name] = ann_dir / name
            write_json(files[name], content)
        files[f"scannetv2_{split}.txt"] = ann_dir / f"scannetv2_{split}.txt"
        write_text(files[f"scannetv2_{split}.txt"], "".join(f"{scene_id}\n" for scene_id in ids))
    used = {o.label for s in scenes for o in s.objects}
    rows = [dict(zip(LABEL_TSV_COLUMNS, line.split("\t"))) for label, line in LABEL_TSV_ROWS.items() if label in used]
    files["scannetv2-labels.combined.tsv"] = ann_dir / "scannetv2-labels.combined.tsv"
    write_label_map_tsv(files["scannetv2-labels.combined.tsv"], rows)
    return files
