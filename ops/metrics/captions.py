"""Caption metrics through pycocoevalcap: PTB tokenizer, BLEU-1..4, METEOR, ROUGE-L, CIDEr(-D), corpus level.

The PTB tokenizer (Stanford CoreNLP) and METEOR 1.5 are Java programs that pycocoevalcap runs as subprocesses,
so ``java`` must be on PATH. METEOR costs a ~7 s JVM start, paid once per ``CaptionScorer``; reuse one scorer for
several benchmarks. SPICE is never used: it downloads CoreNLP at run time.

CIDEr is reported as pycocoevalcap returns it (papers print x100, e.g. 96.3 for 0.963); it is not bounded by 1.
Its IDF comes from the scored reference set, so CIDEr on a handful of items is not comparable with papers.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from types import TracebackType

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

CAPTION_METRICS: tuple[str, ...] = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider")
JAVA_INSTALL_HINT = "install a Java runtime, e.g. `apt-get install default-jre-headless`"


class JavaNotFoundError(RuntimeError):
    """``java`` is missing: pycocoevalcap's PTB tokenizer and METEOR cannot run."""


def require_java() -> str:
    """Path of the ``java`` executable; raises ``JavaNotFoundError`` naming the fix when there is none."""
    java = shutil.which("java")
    if java is None:
        raise JavaNotFoundError(
            "java was not found on PATH; the caption metrics (pycocoevalcap's PTB tokenizer and METEOR) "
            f"run in Java: {JAVA_INSTALL_HINT}"
        )
    return java


class CaptionScorer:
    """PTB tokenization and the COCO caption metrics; holds one METEOR JVM for all its calls.

    The JVM starts with the scorer and loads while the captions are tokenized. Use as a context manager (or
    call ``close``) so the METEOR process ends with the scorer.
    """

    def __init__(self) -> None:
        require_java()
        self._tokenizer = PTBTokenizer()
        self._meteor: Meteor | None = Meteor()

    def __enter__(self) -> CaptionScorer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the METEOR JVM (pycocoevalcap's ``Meteor.__del__`` kills it once the last reference goes)."""
        self._meteor = None

    def tokenize(self, captions: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        """PTB-tokenize ``{key: [caption, ...]}``: lower-cased, punctuation tokens removed, newlines as spaces."""
        require_java()
        tokenized = self._tokenizer.tokenize(
            {key: [{"caption": caption} for caption in texts] for key, texts in captions.items()}
        )
        expected = {key: len(texts) for key, texts in captions.items()}
        if {key: len(texts) for key, texts in tokenized.items()} != expected:
            raise RuntimeError(
                "the PTB tokenizer (java, stanford-corenlp) returned a different number of captions than it was "
                "given; check that `java -version` works"
            )
        return tokenized

    def score_tokenized(
        self, candidates: Mapping[str, list[str]], references: Mapping[str, list[str]]
    ) -> dict[str, float]:
        """Corpus-level metrics of tokenized ``{key: [candidate]}`` against tokenized ``{key: [ref, ...]}``."""
        _check_corpus(candidates, references)
        candidates, references = dict(candidates), dict(references)
        bleu, _ = Bleu(4).compute_score(references, candidates, verbose=0)
        if self._meteor is None:
            raise RuntimeError("this CaptionScorer is closed")
        meteor, _ = self._meteor.compute_score(references, candidates)
        rouge, _ = Rouge().compute_score(references, candidates)
        cider, _ = Cider().compute_score(references, candidates)
        values = [*bleu, meteor, rouge, cider]
        return {name: float(value) for name, value in zip(CAPTION_METRICS, values, strict=True)}

    def score(self, candidates: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
        """Tokenize ``{key: candidate}`` and ``{key: [ref, ...]}`` and score them (``CAPTION_METRICS``)."""
        _check_corpus({key: [text] for key, text in candidates.items()}, references)
        return self.score_tokenized(
            self.tokenize({key: [text] for key, text in candidates.items()}), self.tokenize(references)
        )


def _check_corpus(candidates: Mapping[str, Sequence[str]], references: Mapping[str, Sequence[str]]) -> None:
    if not candidates:
        raise ValueError("no captions to score")
    if set(candidates) != set(references):
        missing = sorted(set(references) ^ set(candidates))[:5]
        raise ValueError(f"candidates and references must have the same keys; differing keys include {missing}")
    for key, texts in candidates.items():
        if len(texts) != 1:
            raise ValueError(f"{key!r}: expected exactly one candidate caption, got {len(texts)}")
        if len(references[key]) == 0:
            raise ValueError(f"{key!r}: no reference captions")
