"""Answer cleaning, EM / refined EM and SQA3D scoring; expected values written by hand from LEO's rules."""

from __future__ import annotations

import pytest

from ops.metrics.answers import answer_match, clean_answer, normalize_prediction, sqa3d_question_type
from ops.metrics.benchmarks import QAItem, score_sqa3d


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # case, trimming, space collapsing, odd characters
        ("  Brown  Chair ", "brown chair"),
        ("what?!", "what"),
        ("black & white", "black  white"),  # spaces are collapsed before '&' is dropped
        ("café", "caf"),
        ("it’s", "its"),
        ("left-hand side, near: door's", "left-hand side, near: door's"),
        # articles before a word
        ("the chair", "chair"),
        ("a brown chair", "brown chair"),
        ("an apple", "apple"),
        ("on the left", "on left"),
        ("the", "the"),
        ("a 2", "two"),  # numbers become words before articles go
        ("a, b", "a, b"),  # an article needs a word right after it
        # typo fixes
        ("letf", "left"),
        ("let", "left"),
        ("tehre", "there"),
        ("rigth", "right"),
        ("rght", "right"),
        ("behine", "behind"),
        ("chai", "chair"),
        ("wasing machine", "washing machine"),
        ("waslked", "walked"),
        ("oclock", "o'clock"),
        ("3 o'  clock", "three o'clock"),
        ("tv", "TV"),
        ("backwards", "backward"),
        # numbers to words
        ("0", "zero"),
        ("none", "zero"),
        ("2", "two"),
        ("20 chairs", "twenty chairs"),
        ("23", "twenty-three"),
        ("21", "21"),
        ("1.5", "fifteen"),  # '.' is dropped first
        # a digit glued to a word
        ("mat2", "mat"),
        ("no1", "no"),
        ("abc12", "abc12"),
    ],
)
def test_clean_answer(raw: str, expected: str) -> None:
    assert clean_answer(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Brown.", "brown"),
        ("Chair..", "chair"),  # one '.' dropped, the filter removes the other
        ("The TV.", "TV"),
        ("TV", "TV"),
        ("A.", "a"),
        (".", ""),
        ("", ""),
        ("Two", "two"),
    ],
)
def test_normalize_prediction(raw: str, expected: str) -> None:
    assert normalize_prediction(raw) == expected


@pytest.mark.parametrize(
    ("pred", "refs", "expected"),
    [
        ("", ["brown"], (0, 0)),
        ("brown", ["black", "brown"], (1, 1)),
        ("brown", ["dark brown"], (0, 1)),
        ("dark brown", ["brown"], (0, 1)),
        ("brownchair", ["brown chair"], (0, 1)),
        ("blue", ["brown", "black"], (0, 0)),
        ("a", ["black"], (0, 1)),  # one letter is a substring: the published refined EM has this quirk
        ("TV", ["tv"], (0, 0)),  # case-sensitive
    ],
)
def test_answer_match(pred: str, refs: list[str], expected: tuple[int, int]) -> None:
    assert answer_match(pred, refs) == expected


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What is on the table?", 0),
        ("  is the door open?", 1),
        ("Island in front of me?", 1),  # prefix match, as Chat-Scene
        ("How many chairs?", 2),
        ("Can I sit?", 3),
        ("Which way is the door?", 4),
        ("Where is the sink?", 5),
    ],
)
def test_sqa3d_question_type(question: str, expected: int) -> None:
    assert sqa3d_question_type(question) == expected


def test_score_sqa3d_cleans_references_and_splits_by_type() -> None:
    items = [
        QAItem("q1", ("tv",), question_type=0),  # "tv." -> "TV"; ref "tv" -> "TV": (1, 1)
        QAItem("q2", ("yes",), question_type=1),  # "No." -> "no": (0, 0)
        QAItem("q3", ("2",), question_type=1),  # "Two." -> "two"; ref "2" -> "two": (1, 1)
        QAItem("q4", ("the left side",), question_type=0),  # "left" inside "leftside": (0, 1)
        QAItem("q5", ("table",), question_type=5),  # no prediction: (0, 0)
    ]
    predictions = {"q1": "tv.", "q2": "No.", "q3": "Two.", "q4": "Left."}
    assert score_sqa3d(predictions, items) == pytest.approx(
        {
            "em": 2 / 5,
            "em_refined": 3 / 5,
            "em_what": 1 / 2,
            "em_refined_what": 2 / 2,
            "em_is": 1 / 2,
            "em_refined_is": 1 / 2,
            "em_other": 0.0,
            "em_refined_other": 0.0,
        }
    )


def test_score_sqa3d_refuses_bad_input() -> None:
    items = [QAItem("q1", ("yes",), question_type=1)]
    with pytest.raises(ValueError, match="match no eval item"):
        score_sqa3d({"q1": "yes", "stray": "no"}, items)
    with pytest.raises(ValueError, match="unique"):
        score_sqa3d({}, items + items)
    with pytest.raises(ValueError, match="no eval items"):
        score_sqa3d({}, [])
    with pytest.raises(ValueError, match="question_type"):
        score_sqa3d({}, [QAItem("q1", ("yes",))])
    with pytest.raises(ValueError, match="no reference answers"):
        QAItem("q1", ())
