"""One scoring function per benchmark, comparable with GPT4Scene's published numbers (docs/REFERENCE.md §3).

Every ``score_*`` takes ``predictions`` (``{item id: the model's raw answer text}``) and the benchmark's eval items
(the plain dataclasses below), and returns a flat ``{metric: float}``. Accuracies, EM and F1 are fractions in
[0, 1]; BLEU/METEOR/ROUGE-L too; CIDEr is pycocoevalcap's raw value and may exceed 1 (papers print x100).

An item without a prediction scores as an empty answer (a miss; for Scan2Cap the empty caption ``"sos eos"``). A
prediction whose ID matches no item is an error. Per-subset metrics (SQA3D question types, ScanRefer
unique/multiple, Multi3DRefer eval types) appear only for subsets that have items.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ops.metrics.answers import SQA3D_QUESTION_TYPES, answer_match, clean_answer, normalize_prediction
from ops.metrics.captions import CaptionScorer
from ops.metrics.grounding import (
    MULTI3DREFER_EVAL_TYPES,
    ZERO_TARGET_EVAL_TYPES,
    Fallback,
    multi3drefer_f1,
    parse_object_ids,
    select_scanrefer_id,
)
from ops.prompts.instances import box_iou_3d

IOU_THRESHOLDS: tuple[float, ...] = (0.25, 0.5)
SCAN2CAP_METRICS: tuple[str, ...] = ("cider", "bleu4", "meteor", "rouge_l")
EMPTY_CAPTION = "sos eos"


def _label(threshold: float) -> str:
    return f"{threshold:.2f}"  # 0.25, 0.50: the published metric names


def _boxes(value: object, field: str, rows: bool) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if rows:
        array = array.reshape(-1, 6) if array.size == 0 else array
        if array.ndim != 2 or array.shape[1] != 6:
            raise ValueError(f"{field} must be [N,6] boxes (centre xyz, size xyz), got shape {array.shape}")
    elif array.shape != (6,):
        raise ValueError(f"{field} must be one box of 6 numbers (centre xyz, size xyz), got shape {array.shape}")
    return array


@dataclass(frozen=True)
class QAItem:
    """One ScanQA or SQA3D question.

    ``id``: unique key of the question (predictions use it). ``refs``: the reference answers, raw as published.
    ``question_type``: SQA3D only, the index into ``SQA3D_QUESTION_TYPES`` (see ``sqa3d_question_type``).
    """

    id: str
    refs: tuple[str, ...]
    question_type: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "refs", tuple(self.refs))
        if not self.refs:
            raise ValueError(f"QA item {self.id!r} has no reference answers")
        if self.question_type is not None and not 0 <= self.question_type < len(SQA3D_QUESTION_TYPES):
            raise ValueError(f"QA item {self.id!r}: question_type must be 0..{len(SQA3D_QUESTION_TYPES) - 1}")


@dataclass(frozen=True, eq=False)
class ScanReferItem:
    """One ScanRefer description.

    ``gt_box``: the target object's GT box [6]. ``proposal_boxes``: the scene's proposal boxes [K,6], row k =
    object ID k (the IDs drawn on the images). ``unique``: the target's class occurs once in the scene (ScanRefer's
    unique/multiple split).
    """

    id: str
    gt_box: np.ndarray
    proposal_boxes: np.ndarray
    unique: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "gt_box", _boxes(self.gt_box, f"ScanRefer item {self.id!r} gt_box", rows=False))
        object.__setattr__(
            self, "proposal_boxes", _boxes(self.proposal_boxes, f"ScanRefer item {self.id!r} proposal_boxes", rows=True)
        )


@dataclass(frozen=True, eq=False)
class Multi3DReferItem:
    """One Multi3DRefer description.

    ``gt_boxes``: GT boxes of all target objects [G,6] (G = 0 for zero-target queries). ``proposal_boxes``: as in
    ``ScanReferItem``. ``eval_type``: one of ``MULTI3DREFER_EVAL_TYPES``.
    """

    id: str
    gt_boxes: np.ndarray
    proposal_boxes: np.ndarray
    eval_type: str

    def __post_init__(self) -> None:
        where = f"Multi3DRefer item {self.id!r}"
        object.__setattr__(self, "gt_boxes", _boxes(self.gt_boxes, f"{where} gt_boxes", rows=True))
        object.__setattr__(self, "proposal_boxes", _boxes(self.proposal_boxes, f"{where} proposal_boxes", rows=True))
        if self.eval_type not in MULTI3DREFER_EVAL_TYPES:
            raise ValueError(f"{where}: eval_type {self.eval_type!r} is not one of {MULTI3DREFER_EVAL_TYPES}")
        if self.eval_type not in ZERO_TARGET_EVAL_TYPES and len(self.gt_boxes) == 0:
            raise ValueError(f"{where}: eval_type {self.eval_type!r} needs at least one GT box")


@dataclass(frozen=True, eq=False)
class CaptionItem:
    """One Scan2Cap GT object; the eval corpus holds every annotated object of the split.

    ``key``: ``"<scene_id>|<gt object id>"``. ``refs``: its ScanRefer descriptions, plain (the scorer wraps them
    in ``sos ... eos``). ``pred_id``: the proposal the prompt names (the best-IoU proposal), or None when no
    proposal matches the object (the model is not asked; the object scores the empty caption). ``gt_box`` [6] and
    ``proposal_boxes`` [K,6] are needed when ``pred_id`` is set.
    """

    key: str
    refs: tuple[str, ...]
    pred_id: int | None = None
    proposal_boxes: np.ndarray | None = None
    gt_box: np.ndarray | None = None

    def __post_init__(self) -> None:
        where = f"Scan2Cap item {self.key!r}"
        object.__setattr__(self, "refs", tuple(self.refs))
        if not self.refs:
            raise ValueError(f"{where} has no reference captions")
        if any(ref.startswith("sos ") or ref.endswith(" eos") for ref in self.refs):
            raise ValueError(f"{where}: refs must be plain descriptions; the scorer adds 'sos'/'eos'")
        if self.pred_id is None:
            return
        if self.proposal_boxes is None or self.gt_box is None:
            raise ValueError(f"{where}: pred_id needs proposal_boxes and gt_box")
        object.__setattr__(self, "gt_box", _boxes(self.gt_box, f"{where} gt_box", rows=False))
        object.__setattr__(self, "proposal_boxes", _boxes(self.proposal_boxes, f"{where} proposal_boxes", rows=True))
        if not 0 <= self.pred_id < len(self.proposal_boxes):
            count = len(self.proposal_boxes)
            raise ValueError(f"{where}: pred_id {self.pred_id} is not a row of its {count} proposals")


def _answers(predictions: Mapping[str, str], ids: Iterable[str], benchmark: str) -> Callable[[str], str]:
    """Check item IDs are unique and every prediction belongs to an item; return id -> answer ("" if none)."""
    ids = list(ids)
    if not ids:
        raise ValueError(f"{benchmark}: no eval items to score")
    known = set(ids)
    if len(known) != len(ids):
        raise ValueError(f"{benchmark}: eval item IDs must be unique")
    unknown = sorted(set(predictions) - known)
    if unknown:
        raise ValueError(f"{benchmark}: {len(unknown)} predictions match no eval item, e.g. {unknown[:5]}")
    return lambda item_id: predictions.get(item_id, "")


@contextmanager
def _scorer(scorer: CaptionScorer | None) -> Iterator[CaptionScorer]:
    """The caller's scorer, or a new one that is closed afterwards."""
    if scorer is not None:
        yield scorer
        return
    with CaptionScorer() as own:
        yield own


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))


def _em_scores(pairs: Sequence[tuple[int, int]], prefix: str = "") -> dict[str, float]:
    return {f"em{prefix}": _mean([p[0] for p in pairs]), f"em_refined{prefix}": _mean([p[1] for p in pairs])}


def score_scanqa(
    predictions: Mapping[str, str], items: Sequence[QAItem], scorer: CaptionScorer | None = None
) -> dict[str, float]:
    """ScanQA: ``em``, ``em_refined`` and BLEU-1..4, METEOR, ROUGE-L, CIDEr of the cleaned answers.

    As in GPT4Scene's evaluation the cleaned answer is compared with the *raw* references for EM (they are not
    cleaned), and the caption metrics use the raw references with newlines as spaces, stripped.
    """
    answer = _answers(predictions, (item.id for item in items), "ScanQA")
    cleaned = {item.id: normalize_prediction(answer(item.id)) for item in items}
    metrics = _em_scores([answer_match(cleaned[item.id], item.refs) for item in items])
    references = {item.id: [ref.replace("\n", " ").strip() for ref in item.refs] for item in items}
    with _scorer(scorer) as active:
        metrics.update(active.score(cleaned, references))
    return metrics


def score_sqa3d(predictions: Mapping[str, str], items: Sequence[QAItem]) -> dict[str, float]:
    """SQA3D: ``em``, ``em_refined`` overall and ``em_<type>``, ``em_refined_<type>`` per question type; here the
    references are cleaned like the answers."""
    answer = _answers(predictions, (item.id for item in items), "SQA3D")
    by_type: dict[int, list[tuple[int, int]]] = defaultdict(list)
    pairs = []
    for item in items:
        if item.question_type is None:
            raise ValueError(f"SQA3D item {item.id!r} has no question_type")
        pair = answer_match(normalize_prediction(answer(item.id)), [clean_answer(ref) for ref in item.refs])
        pairs.append(pair)
        by_type[item.question_type].append(pair)
    metrics = _em_scores(pairs)
    for type_index in sorted(by_type):
        metrics.update(_em_scores(by_type[type_index], f"_{SQA3D_QUESTION_TYPES[type_index]}"))
    return metrics


def score_scanrefer(
    predictions: Mapping[str, str], items: Sequence[ScanReferItem], fallback: Fallback = "zero", seed: int = 0
) -> dict[str, float]:
    """ScanRefer: ``acc@0.25``, ``acc@0.50`` overall and ``unique_``/``multiple_`` of them.

    The first valid ``<OBJ###>`` of an answer selects a proposal box; a hit is IoU with the GT box >= threshold.
    An answer without a valid ID uses ``fallback`` (``select_scanrefer_id``): ``"zero"`` is GPT4Scene's published
    behaviour, ``"random"`` Chat-Scene's (drawn from ``numpy.random.default_rng(seed)`` in item order).
    """
    answer = _answers(predictions, (item.id for item in items), "ScanRefer")
    rng = np.random.default_rng(seed)
    hits: dict[str, list[list[bool]]] = defaultdict(list)
    for item in items:
        pred_id = select_scanrefer_id(answer(item.id), len(item.proposal_boxes), fallback, rng)
        iou = 0.0 if pred_id is None else float(box_iou_3d(item.proposal_boxes[pred_id], item.gt_box))
        row = [iou >= t for t in IOU_THRESHOLDS]
        hits[""].append(row)
        hits["unique_" if item.unique else "multiple_"].append(row)
    metrics = {}
    for prefix in ("", "unique_", "multiple_"):
        if hits[prefix]:
            for column, threshold in enumerate(IOU_THRESHOLDS):
                metrics[f"{prefix}acc@{_label(threshold)}"] = _mean([row[column] for row in hits[prefix]])
    return metrics


def score_multi3drefer(predictions: Mapping[str, str], items: Sequence[Multi3DReferItem]) -> dict[str, float]:
    """Multi3DRefer: mean F1 ``f1@0.25``, ``f1@0.50`` over all queries and ``<eval_type>_f1@...`` per eval type.

    Every valid ``<OBJ###>`` of an answer counts, duplicates included; see ``multi3drefer_f1``.
    """
    answer = _answers(predictions, (item.id for item in items), "Multi3DRefer")
    scores: dict[str, list[list[float]]] = defaultdict(list)
    for item in items:
        pred_ids = parse_object_ids(answer(item.id), len(item.proposal_boxes))
        row = multi3drefer_f1(
            item.proposal_boxes[pred_ids], item.gt_boxes, item.eval_type in ZERO_TARGET_EVAL_TYPES, IOU_THRESHOLDS
        )
        scores[""].append(row)
        scores[f"{item.eval_type}_"].append(row)
    metrics = {}
    for prefix in ["", *(f"{t}_" for t in MULTI3DREFER_EVAL_TYPES)]:
        if scores[prefix]:
            for column, threshold in enumerate(IOU_THRESHOLDS):
                metrics[f"{prefix}f1@{_label(threshold)}"] = _mean([row[column] for row in scores[prefix]])
    return metrics


def score_scan2cap(
    predictions: Mapping[str, str], items: Sequence[CaptionItem], scorer: CaptionScorer | None = None
) -> dict[str, float]:
    """Scan2Cap: ``cider@0.25``, ``bleu4@0.25``, ``meteor@0.25``, ``rouge_l@0.25`` and the same ``@0.50``.

    For every object of the corpus the candidate at threshold t is ``"sos <caption> eos"`` (newlines as spaces)
    when its proposal box ``pred_id`` has IoU >= t with the GT box and the model answered, else ``"sos eos"``.
    References are ``"sos <description> eos"``; the PTB tokenizer lowercases, so the published capitalisation of
    descriptions does not change any score.
    """
    answer = _answers(predictions, (item.key for item in items), "Scan2Cap")
    for item in items:
        if item.pred_id is None and item.key in predictions:
            raise ValueError(f"Scan2Cap: prediction for {item.key!r}, an object without a proposal (pred_id None)")
    candidates: dict[float, dict[str, str]] = {t: {} for t in IOU_THRESHOLDS}
    for item in items:
        caption = answer(item.key)
        iou = 0.0
        if item.pred_id is not None and item.key in predictions:
            iou = float(box_iou_3d(item.proposal_boxes[item.pred_id], item.gt_box))
        for threshold in IOU_THRESHOLDS:
            candidates[threshold][item.key] = (
                f"sos {caption} eos".replace("\n", " ") if iou >= threshold else EMPTY_CAPTION
            )
    references = {item.key: [f"sos {ref} eos" for ref in item.refs] for item in items}

    metrics = {}
    with _scorer(scorer) as active:
        tokenized_refs = active.tokenize(references)
        for threshold in IOU_THRESHOLDS:
            tokenized = active.tokenize({key: [text] for key, text in candidates[threshold].items()})
            values = active.score_tokenized(tokenized, tokenized_refs)
            metrics.update({f"{name}@{_label(threshold)}": values[name] for name in SCAN2CAP_METRICS})
    return metrics
