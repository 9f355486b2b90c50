"""Benchmark annotations for synthetic scenes, in the published schemas (docs/REFERENCE.md §1).

Every statement is derived from the generated geometry through ``ops.synthetic.facts``, so it is true; SQA3D's
situated questions are ``ops.synthetic.sqa3d``. Object ids are the aggregation ``objectId``s. ScanQA
``question_id`` is ``<split>-<scene_id>-<n>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ops.core.atomic import write_json, write_text
from ops.scannet.writers import LABEL_TSV_COLUMNS, write_label_map_tsv
from ops.synthetic.catalog import CATEGORIES, LABEL_TSV_ROWS, PALETTE
from ops.synthetic.facts import NUMBER_WORDS, Fact, SceneFacts, article, noun, plural, tokenize
from ops.synthetic.sqa3d import sqa3d_documents, sqa3d_entries
from ops.synthetic.truth import ObjectTruth, SceneTruth


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
            **sqa3d_documents(split, sqa_questions, sqa_annotations),
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
