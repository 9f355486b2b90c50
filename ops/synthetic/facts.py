"""What is true of a synthetic scene, as words: each object's facts and the references that single it out.

Facts per object, derived from the generated geometry (``SceneTruth``, aligned frame): its colour, ``on``/``supports``
(what stands on what), ``next_to`` (footprints within 0.45 m and overlapping heights), ``left_of``/``right_of``
(beside an object that has a front, seen by someone facing it), ``front_of`` (in front of a floor object, within
1 m), ``above`` (a wall-hung object over a piece of furniture) and ``corner`` (within 0.4 m of two walls). An object
is referred to by the smallest set of its facts that no other object of its category shares.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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


def noun(label: str) -> str:
    """How a raw label reads as a singular noun."""
    return NOUNS.get(label, label)


def plural(label: str) -> str:
    """The plural of a raw label."""
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


def half_along(obj: ObjectTruth, axis: np.ndarray) -> float:
    """Half the extent of the object's xy box projected on a unit axis."""
    return float(np.abs(obj.size[:2] * axis).sum() / 2)


def on_floor(obj: ObjectTruth) -> bool:
    """Whether the object stands on the floor (neither on another object nor on a wall)."""
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
            half_forward, half_lateral = half_along(b, b.front), half_along(b, left_axis)
            if next_to and abs(forward) < half_forward + 0.3 and abs(lateral) > half_lateral:
                kinds.add("left_of" if lateral > 0 else "right_of")
            if (
                on_floor(a)
                and on_floor(b)
                and forward > half_forward
                and abs(lateral) < half_lateral
                and _gap_xy(a, b) <= FRONT_REACH
            ):
                kinds.add("front_of")
        if a.wall_hung and on_floor(b) and a.aabb_min[2] >= b.aabb_max[2]:
            if np.all(a.center[:2] > b.aabb_min[:2] - 0.35) and np.all(a.center[:2] < b.aabb_max[:2] + 0.35):
                kinds.add("above")
        return kinds

    def _facts_of(self, a: ObjectTruth) -> frozenset[Fact]:
        facts = {Fact("color", a.color)}
        for (first, second), kinds in self.pair_kinds.items():
            if first == a.object_id:
                facts.update(Fact(kind, self.scene.object(second).label) for kind in kinds)
        if on_floor(a):
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
