"""Caption metrics, ScanQA and Scan2Cap scoring against pycocoevalcap called directly and hand-computed values.

METEOR starts a JVM (~8 s), so the module shares one ``CaptionScorer`` and one direct ``Meteor``.
"""

from __future__ import annotations

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from ops.metrics.benchmarks import CaptionItem, QAItem, score_scan2cap, score_scanqa
from ops.metrics.captions import CaptionScorer, JavaNotFoundError


@pytest.fixture(scope="module")
def scorer():
    with CaptionScorer() as caption_scorer:
        yield caption_scorer


@pytest.fixture(scope="module")
def direct_meteor():
    return Meteor()


def _library_scores(candidates: dict[str, str], references: dict[str, list[str]], meteor: Meteor) -> dict:
    """pycocoevalcap used as its own README does: PTB-tokenize both sides, then each scorer."""
    tokenizer = PTBTokenizer()
    res = tokenizer.tokenize({key: [{"caption": text}] for key, text in candidates.items()})
    gts = tokenizer.tokenize({key: [{"caption": text} for text in texts] for key, texts in references.items()})
    bleu, _ = Bleu(4).compute_score(gts, res)
    return {
        "bleu1": bleu[0],
        "bleu2": bleu[1],
        "bleu3": bleu[2],
        "bleu4": bleu[3],
        "meteor": meteor.compute_score(gts, res)[0],
        "rouge_l": Rouge().compute_score(gts, res)[0],
        "cider": Cider().compute_score(gts, res)[0],
    }


TOY_CANDIDATES = {"q0": "brown chair", "q1": "left of the table", "q2": "three"}
TOY_REFERENCES = {
    "q0": ["the chair is brown", "a brown wooden chair"],
    "q1": ["on the left side of the table"],
    "q2": ["two"],
}


def test_caption_metrics_match_pycocoevalcap_and_hand_values(scorer, direct_meteor) -> None:
    ours = scorer.score(TOY_CANDIDATES, TOY_REFERENCES)
    assert ours == pytest.approx(_library_scores(TOY_CANDIDATES, TOY_REFERENCES, direct_meteor), abs=1e-12)
    # By hand. Candidate lengths 2+4+1 = 7; closest reference lengths 4+7+1 = 12; brevity penalty exp(1-12/7).
    # Clipped matches: unigrams 2+4+0 of 7, bigrams 0+2 of 1+3 ("of the", "the table"), trigrams 1 of 2
    # ("of the table"), 4-grams 0 of 1 (pycocoevalcap adds 1e-15 to the matches, 1e-9 to the counts).
    brevity = np.exp(1 - 12 / 7)
    precisions = [6 / 7, 2 / 4, 1 / 2, 1e-15 / (1 + 1e-9)]
    for n in range(1, 5):
        assert ours[f"bleu{n}"] == pytest.approx(brevity * np.prod(precisions[:n]) ** (1 / n), rel=1e-6)

    # ROUGE-L (beta 1.2): q0 best precision 2/2 and recall 2/4 ("brown chair" in "a brown wooden chair"),
    # q1 LCS 4: precision 4/4, recall 4/7; q2 0.
    def rouge(p: float, r: float) -> float:
        return (1 + 1.2**2) * p * r / (r + 1.2**2 * p)

    assert ours["rouge_l"] == pytest.approx((rouge(1, 2 / 4) + rouge(1, 4 / 7) + 0) / 3)
    # Recorded for the same three pairs in docs/REFERENCE.md §3.8 (METEOR 1.5, CIDEr-D).
    assert ours["meteor"] == pytest.approx(0.294, abs=5e-4)
    assert ours["cider"] == pytest.approx(1.750, abs=5e-4)


def test_identical_candidate_has_the_best_cider(scorer) -> None:
    # Already PTB-normal text (lower case, no punctuation), so it is scored as is. One reference per item.
    references = {
        "a": ["a brown wooden chair next to the desk"],
        "b": ["a white table in the corner"],
        "c": ["the black monitor on the desk"],
        "d": ["a green plant by the window"],
    }
    others = {"b": ["a white table"], "c": ["the black monitor"], "d": ["a plant"]}
    best = scorer.score_tokenized({"a": references["a"], **others}, references)["cider"]
    for candidate in [
        "a brown chair next to the desk",
        "a brown wooden chair next to the desk and the window",
        "a brown wooden chair next to the table",
        "chair",
    ]:
        assert scorer.score_tokenized({"a": [candidate], **others}, references)["cider"] < best


def test_score_scanqa_uses_raw_references(scorer, direct_meteor) -> None:
    items = [
        QAItem("a", ("the chair is brown", "a brown wooden chair")),
        QAItem("b", ("tv",)),
        QAItem("c", ("the table",)),
        QAItem("d", ("2",)),
        QAItem("e", ("white",)),
        QAItem("f", ("left\nside ",)),
    ]
    predictions = {"a": "Brown chair.", "b": "The TV.", "c": "Table.", "d": "2", "e": "White."}
    # Cleaned answers by hand; EM compares them with the raw references:
    cleaned = {"a": "brown chair", "b": "TV", "c": "table", "d": "two", "e": "white", "f": ""}
    # a (0,0); b "TV" vs "tv" (0,0); c "table" inside "thetable" (0,1); d "two" vs "2" (0,0); e (1,1); f empty (0,0)
    raw_refs = {item.id: list(item.refs) for item in items}
    raw_refs["f"] = ["left side"]  # newlines become spaces, stripped
    expected = {"em": 1 / 6, "em_refined": 2 / 6, **_library_scores(cleaned, raw_refs, direct_meteor)}
    assert score_scanqa(predictions, items, scorer) == pytest.approx(expected, abs=1e-12)


def test_score_scan2cap_empty_captions_below_threshold_and_missing(scorer, direct_meteor) -> None:
    gt = np.array([0.0, 0.0, 0.0, 2.0, 2.0, 2.0])
    proposals = np.array([[1.0, 0.0, 0.0, 2.0, 2.0, 2.0], gt])  # proposal 0: IoU 1/3; proposal 1: IoU ~1
    items = [
        CaptionItem("s|0", ("this is a brown chair . it is next to the table .",), 0, proposals, gt),
        CaptionItem("s|1", ("a white table near the wall .", "the table is white ."), 1, proposals, gt),
        CaptionItem("s|2", ("a black monitor on the desk .",), 1, proposals, gt),  # the model gave no caption
        CaptionItem("s|3", ("a plant by the window .",)),  # no proposal matches this object
    ]
    predictions = {"s|0": "This is a brown chair.", "s|1": "A white table\nnear the wall."}
    references = {item.key: [f"sos {ref} eos" for ref in item.refs] for item in items}
    at_025 = {"s|0": "sos This is a brown chair. eos", "s|1": "sos A white table near the wall. eos"}
    at_025.update({"s|2": "sos eos", "s|3": "sos eos"})
    at_050 = {**at_025, "s|0": "sos eos"}  # IoU 1/3 < 0.5
    expected = {}
    for label, candidates in (("0.25", at_025), ("0.50", at_050)):
        library = _library_scores(candidates, references, direct_meteor)
        expected.update({f"{name}@{label}": library[name] for name in ("cider", "bleu4", "meteor", "rouge_l")})
    ours = score_scan2cap(predictions, items, scorer)
    assert ours == pytest.approx(expected, abs=1e-12)
    assert ours["cider@0.50"] < ours["cider@0.25"]


def test_scan2cap_refuses_bad_items() -> None:
    with pytest.raises(ValueError, match="plain descriptions"):
        CaptionItem("s|0", ("sos a chair eos",))
    with pytest.raises(ValueError, match="needs proposal_boxes and gt_box"):
        CaptionItem("s|0", ("a chair",), pred_id=0)
    with pytest.raises(ValueError, match="not a row"):
        CaptionItem("s|0", ("a chair",), 3, np.zeros((2, 6)), np.zeros(6))
    with pytest.raises(ValueError, match="without a proposal"):
        score_scan2cap({"s|0": "a chair"}, [CaptionItem("s|0", ("a chair",))])


def test_caption_corpus_keys_must_agree(scorer) -> None:
    with pytest.raises(ValueError, match="same keys"):
        scorer.score({"a": "x"}, {"b": ["x"]})
    with pytest.raises(ValueError, match="no reference captions"):
        scorer.score({"a": "x"}, {"a": []})


def test_missing_java_is_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaNotFoundError, match=r"java was not found.*apt-get install default-jre-headless"):
        CaptionScorer()
    with pytest.raises(JavaNotFoundError):
        score_scanqa({"a": "yes"}, [QAItem("a", ("yes",))])
