"""Metrics of the five benchmarks (ScanQA, SQA3D, ScanRefer, Multi3DRefer, Scan2Cap), as GPT4Scene scores them.

``benchmarks`` holds one ``score_*`` function per benchmark and the eval-item dataclasses they take;
``answers``, ``grounding`` and ``captions`` hold the pieces (answer cleaning and EM, ID parsing, IoU-based
accuracy and F1, pycocoevalcap wrappers). ``suite`` scores an ``EvalSuite`` loaded from one of our eval sets
(``eval_sets``) or GPT4Scene's annotation folder (``official``) against prediction files (``predictions``);
``report`` and ``scoring`` turn scores into tables and the files the evaluation assets write.
"""

from __future__ import annotations

from ops.metrics.answers import (
    SQA3D_QUESTION_TYPES,
    answer_match,
    clean_answer,
    normalize_prediction,
    sqa3d_question_type,
)
from ops.metrics.benchmarks import (
    IOU_THRESHOLDS,
    CaptionItem,
    Multi3DReferItem,
    QAItem,
    ScanReferItem,
    score_multi3drefer,
    score_scan2cap,
    score_scanqa,
    score_scanrefer,
    score_sqa3d,
)
from ops.metrics.captions import CAPTION_METRICS, CaptionScorer, JavaNotFoundError, require_java
from ops.metrics.grounding import (
    FALLBACKS,
    MULTI3DREFER_EVAL_TYPES,
    multi3drefer_f1,
    parse_object_ids,
    select_scanrefer_id,
)

__all__ = [
    "CAPTION_METRICS",
    "FALLBACKS",
    "IOU_THRESHOLDS",
    "MULTI3DREFER_EVAL_TYPES",
    "SQA3D_QUESTION_TYPES",
    "CaptionItem",
    "CaptionScorer",
    "JavaNotFoundError",
    "Multi3DReferItem",
    "QAItem",
    "ScanReferItem",
    "answer_match",
    "clean_answer",
    "multi3drefer_f1",
    "normalize_prediction",
    "parse_object_ids",
    "require_java",
    "score_multi3drefer",
    "score_scan2cap",
    "score_scanqa",
    "score_scanrefer",
    "score_sqa3d",
    "select_scanrefer_id",
    "sqa3d_question_type",
]
