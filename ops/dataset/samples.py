"""GPT4Scene samples: benchmark annotations + per-scene visual prompts → one (images, prompt, answer) row each.

Prompts and answers are written as GPT4Scene's training data writes them, i.e. Chat-Scene's conventions
(docs/REFERENCE.md §2.6). The three template lists are verbatim copies of Chat-Scene ``prompts/prompts.py``
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

This module holds the ``Sample`` row, its JSONL file and the text formats; ``ops.dataset.scene_context`` reads
what a scene offers (marker boxes, images) and maps objects to IDs, and ``ops.dataset.sample_builders`` turns
benchmark records into samples task by task.

The user text is one ``<image>`` per image, then the prompt (images first, as GPT4Scene's evaluation sends them).

Every random choice (template, situation, answer) comes from ``sample_rng(seed, sample_id)``, so a sample does not
depend on which other samples are built.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ops.core.atomic import write_text
from ops.core.errors import SceneInputError
from ops.dataset.annotations import IMAGE_PLACEHOLDER

TASKS = ("scanqa", "sqa3d", "scanrefer", "multi3drefer", "scan2cap")
VARIANTS = ("marked", "no_bev", "unmarked")
SPLITS = ("train", "val")
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


def pick(rng: np.random.Generator, options: Sequence[str]) -> str:
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
