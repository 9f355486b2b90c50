"""Answer normalisation and exact match for ScanQA and SQA3D.

The rules are LEO's, as Chat-Scene's ``utils/helper.py`` implements them and GPT4Scene's ``evaluate/`` copies them
verbatim; they are reproduced rule for rule so that EM numbers are comparable with the published ones, quirks
included (``tv`` becomes upper-case ``TV``; a one-letter answer is a substring of many references).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Applied in this order after the character filter; each pattern is a whole-word regex.
_WORD_FIXES: tuple[tuple[str, str], ...] = (
    # typos seen in the answer sets
    (r"\bletf\b", "left"),
    (r"\blet\b", "left"),
    (r"\btehre\b", "there"),
    (r"\brigth\b", "right"),
    (r"\brght\b", "right"),
    (r"\bbehine\b", "behind"),
    (r"\btv\b", "TV"),
    (r"\bchai\b", "chair"),
    (r"\bwasing\b", "washing"),
    (r"\bwaslked\b", "walked"),
    (r"\boclock\b", "o'clock"),
    (r"\bo'[ ]+clock\b", "o'clock"),
    # numbers to words
    (r"\b0\b", "zero"),
    (r"\bnone\b", "zero"),
    (r"\b1\b", "one"),
    (r"\b2\b", "two"),
    (r"\b3\b", "three"),
    (r"\b4\b", "four"),
    (r"\b5\b", "five"),
    (r"\b6\b", "six"),
    (r"\b7\b", "seven"),
    (r"\b8\b", "eight"),
    (r"\b9\b", "nine"),
    (r"\b10\b", "ten"),
    (r"\b11\b", "eleven"),
    (r"\b12\b", "twelve"),
    (r"\b13\b", "thirteen"),
    (r"\b14\b", "fourteen"),
    (r"\b15\b", "fifteen"),
    (r"\b16\b", "sixteen"),
    (r"\b17\b", "seventeen"),
    (r"\b18\b", "eighteen"),
    (r"\b19\b", "nineteen"),
    (r"\b20\b", "twenty"),
    (r"\b23\b", "twenty-three"),
    # word+digit tokens lose the digit (no1, mat2)
    (r"\b([a-zA-Z]+)([0-9])\b", r"\g<1>"),
    # articles before a word
    (r"\ba\b ([a-zA-Z]+)", r"\g<1>"),
    (r"\ban\b ([a-zA-Z]+)", r"\g<1>"),
    (r"\bthe\b ([a-zA-Z]+)", r"\g<1>"),
    (r"\bbackwards\b", "backward"),
)
_COMPILED_FIXES = tuple((re.compile(pattern), replacement) for pattern, replacement in _WORD_FIXES)
_DISALLOWED_CHARS = re.compile(r"[^a-zA-Z0-9,'\s\-:]+")

# SQA3D question types, indexed as Chat-Scene's ``sqa_type`` (0..5).
SQA3D_QUESTION_TYPES: tuple[str, ...] = ("what", "is", "how", "can", "which", "other")


def clean_answer(text: str) -> str:
    """LEO's answer cleaning: lowercase, trim, collapse spaces, drop odd characters, fix typos, numbers to words,
    strip a digit glued to a word, drop articles before a word, ``backwards`` -> ``backward``.

    The reference also rewrites ``. {2,}`` to ``. ``, ``ç`` to ``c`` and ``’`` to ``'``, but only after spaces were
    collapsed and after the character filter removed ``.``, ``ç`` and ``’``, so those rules never fire and are
    left out here. Spaces are collapsed *before* the filter, so ``black & white`` keeps two spaces, as in the
    reference.
    """
    text = text.lower()
    text = re.sub(r"[ ]+$", "", text)
    text = re.sub(r"^[ ]+", "", text)
    text = re.sub(r" {2,}", " ", text)
    text = _DISALLOWED_CHARS.sub("", text)
    for pattern, replacement in _COMPILED_FIXES:
        text = pattern.sub(replacement, text)
    return text


def normalize_prediction(text: str) -> str:
    """A model answer as the benchmarks compare it: if longer than one character, drop one trailing ``.`` and
    lowercase the first character; then ``clean_answer``."""
    if len(text) > 1:
        if text[-1] == ".":
            text = text[:-1]
        text = text[0].lower() + text[1:]
    return clean_answer(text)


def answer_match(pred: str, refs: Sequence[str]) -> tuple[int, int]:
    """(EM, refined EM) of one answer: EM = the answer equals a reference; refined EM also accepts, with all
    whitespace removed, the answer inside a reference or a reference inside the answer. An empty answer scores
    (0, 0)."""
    if len(pred) == 0:
        return 0, 0
    if pred in refs:
        return 1, 1
    squeezed = "".join(pred.split())
    for ref in refs:
        ref_squeezed = "".join(ref.split())
        if squeezed in ref_squeezed or ref_squeezed in squeezed:
            return 0, 1
    return 0, 0


def sqa3d_question_type(question: str) -> int:
    """SQA3D question type index (``SQA3D_QUESTION_TYPES``) from the question's first word, by prefix as
    Chat-Scene does (so ``Island ...`` counts as ``is``)."""
    question = question.lstrip().lower()
    for index, prefix in enumerate(SQA3D_QUESTION_TYPES[:-1]):
        if question.startswith(prefix):
            return index
    return len(SQA3D_QUESTION_TYPES) - 1
