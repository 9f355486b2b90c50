"""Zero-shot GPT4Scene: an API model sees a 2x4 grid of 8 marked frames and the marked BEV, and its free-form
answers are brought into the benchmarks' answer formats.

What the paper states (docs/REFERENCE.md §2.8): 8 marked frames stitched into one 2x4 composite, plus
the marked BEV, a system prompt explaining both images and the markers, task prompts; answers are post-processed
("remove imposed formatting, normalise singular/plural and case"); a base model's grounding answers are read as
bare integers after deleting ``Img_\\d+``, ``Image \\d+`` and ``\\d+\\.`` enumerations. The prompt texts were never
released, so ``SYSTEM_PROMPT``, ``TASK_INSTRUCTIONS`` and the singular/plural rule below are our own (documented
in docs/ARCHITECTURE.md). Variants: ``marked`` sends grid + BEV, ``no_bev`` the marked grid only, ``unmarked`` the
grid of raw frames only (the eval rows' image lists: BEV first for ``marked``).

``ChatClient`` is a plain OpenAI-compatible HTTP client (stdlib ``urllib``); the Dagster resource
``resources.vlm_client.OpenAIChatClient`` builds one from configuration. Over an eval set, ``with_retries`` retries a
request after a connection error, HTTP 429 or 5xx (``EndpointError.retryable``) with doubling backoff, and
``run_zero_shot`` keeps at most ``concurrency`` requests in flight while writing answers in eval-set order.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ops.core.errors import SceneInputError
from ops.core.layout import SceneLayout
from ops.dataset.samples import VARIANTS, multi3drefer_answer, object_token
from ops.metrics.grounding import OBJECT_ID_PATTERN
from ops.model.inference import EvalRow, InferenceStats, Log, chunk_rows, predict, read_eval_rows
from ops.prompts.frames import composite_grid
from ops.prompts.writer import encode_png

GRID_ROWS, GRID_COLS = 2, 4
ZERO_SHOT_FRAMES = GRID_ROWS * GRID_COLS

SYSTEM_PROMPT = (
    "You see an indoor room scanned in 3D. The first image is a 2x4 grid of 8 video frames in the order they were "
    "filmed (left to right, then the second row). The second image, when given, is a top-down bird's-eye view "
    "(BEV) of the whole room. Objects carry markers: a filled circle with the object's number, drawn at the "
    "object's centre in the BEV and on its visible part in each frame; an object keeps its number in every image. "
    "Use the BEV for the layout of the room and the frames for appearance. When you name objects, write their "
    "numbers as <OBJ###> with three digits, e.g. <OBJ007>."
)
TASK_INSTRUCTIONS = {
    "scanqa": "Reply with the answer only, no explanation.",
    "sqa3d": "Reply with the answer only, no explanation.",
    "scanrefer": "Reply with the one object's ID only, e.g. <OBJ012>.",
    "multi3drefer": "Reply 'No.' if no object fits; otherwise 'Yes.' and every fitting object's ID, e.g. "
    "'Yes. <OBJ003> and <OBJ017>.'",
    "scan2cap": "Reply with one or two sentences.",
}

# Formatting models add around an answer: markdown emphasis/code, "Answer:" labels, quotes.
_MARKDOWN = re.compile(r"(\*\*|__|`+|^#+\s*)", re.MULTILINE)
_LABEL = re.compile(r"^\s*(final answer|answer|a)\s*[:：]\s*", re.IGNORECASE)
# Enumerations deleted before bare integers are read as IDs (GPT4Scene's base-model parsing).
# GUESS: "\d+." counts as an enumeration when it starts a line or item ("1. the chair"), not a sentence-final "7.".
_ENUMERATIONS = re.compile(r"Img_\d+|Image \d+|(?:^|(?<=[\s,;:]))\d+\.(?=\s)", re.IGNORECASE | re.MULTILINE)
_INTEGER = re.compile(r"\b\d+\b")
# Words whose final "s" is not a plural (the singular/plural rule's exceptions).
_NOT_PLURAL = frozenset(
    {
        "yes",
        "this",
        "is",
        "was",
        "has",
        "its",
        "his",
        "hers",
        "theirs",
        "ours",
        "yours",
        "less",
        "across",
        "always",
        "perhaps",
        "towards",
        "backwards",
        "upstairs",
        "downstairs",
        "sometimes",
        "series",
        "species",
        "news",
        "lens",
        "gas",
        "bus",
        "chaos",
        "canvas",
        "atlas",
        "bias",
        "plus",
        "thus",
        "various",
        "numerous",
        "famous",
        "glasses",
        "pants",
        "jeans",
        "scissors",
        "shorts",
        "stairs",
        "trousers",
        "clothes",
        "dishes",
    }
)


# -- images and messages ------------------------------------------------------------------------------------------


def data_url(data: bytes, mime: str = "image/png") -> str:
    """A base64 ``data:`` URL."""
    import base64

    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _decode(row: EvalRow, source: bytes | str, root: Path | None) -> np.ndarray:
    if isinstance(source, bytes):
        data = source
    else:
        if root is None:
            raise SceneInputError(row.scene_id, source, "the eval set stores image paths: give the storage root")
        try:
            data = (root / source).read_bytes()
        except OSError as exc:
            raise SceneInputError(row.scene_id, root / source, f"cannot read image: {exc}") from exc
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    if image is None:
        raise SceneInputError(row.scene_id, source if isinstance(source, str) else None, "image does not decode")
    return image


def zero_shot_images(row: EvalRow, variant: str, root: str | Path | None = None) -> list[bytes]:
    """PNG bytes of what the API model sees: the 2x4 grid of 8 frames sampled uniformly (``s_i = floor(i*N/8)``)
    from the row's frames, then (``marked``) the row's BEV."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    sources = list(row.images)
    bev = sources.pop(0) if variant == "marked" else None
    if not sources:
        raise SceneInputError(row.scene_id, None, f"row {row.sample_id} has no frames")
    picked = [sources[i * len(sources) // ZERO_SHOT_FRAMES] for i in range(min(ZERO_SHOT_FRAMES, len(sources)))]
    root = Path(root) if root is not None else None
    grid = composite_grid([_decode(row, s, root) for s in picked], rows=GRID_ROWS, cols=GRID_COLS)
    images = [encode_png(grid)]
    if bev is not None:
        images.append(encode_png(_decode(row, bev, root)))
    return images


def build_messages(row: EvalRow, variant: str, root: str | Path | None = None) -> list[dict[str, Any]]:
    """The OpenAI chat messages of one eval row: the system prompt, then the images and the task prompt."""
    parts: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": data_url(image)}} for image in zero_shot_images(row, variant, root)
    ]
    text = f"{row.prompt.strip()} {TASK_INSTRUCTIONS[row.task]}"
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": [*parts, {"type": "text", "text": text}]},
    ]


# -- answers ------------------------------------------------------------------------------------------------------


def strip_formatting(text: str) -> str:
    """Markdown emphasis and code marks, an ``Answer:`` label, surrounding quotes, and line breaks removed."""
    text = _MARKDOWN.sub("", text)
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    text = _LABEL.sub("", text.strip("\"'“”").strip()).strip()
    return text.strip("\"'“”").strip()


def singular(word: str) -> str:
    """A plural noun's singular by English suffix rules (``chairs`` → ``chair``, ``shelves`` → ``shelf``,
    ``boxes`` → ``box``, ``bodies`` → ``body``); words in ``_NOT_PLURAL`` and short words stay."""
    lower = word.lower()
    if len(lower) <= 3 or lower in _NOT_PLURAL or not lower.endswith("s") or lower.endswith(("ss", "us", "is")):
        return word
    if lower.endswith("ies"):
        return word[:-3] + "y"
    if lower.endswith("ves"):
        return word[:-3] + "f"
    if lower.endswith(("ches", "shes", "xes", "zes", "ses")):
        return word[:-2]
    return word[:-1]


def postprocess_answer(task: str, text: str) -> str:
    """A free-form answer in the format the benchmark's scorer reads (the fine-tuned model's format).

    QA: formatting removed, one sentence, lower case, a final period dropped, the last word made singular (the
    paper normalises singular/plural; we do it on the answer side only, the references are never touched).
    ScanRefer: the first ID as ``<OBJ###>.``; Multi3DRefer: ``No.`` or ``Yes. <OBJ...>...`` (sorted, distinct);
    IDs come from ``<OBJ###>`` tokens or, failing those, from bare integers once enumerations are deleted.
    Scan2Cap: formatting removed.
    """
    raw, text = text, strip_formatting(text)
    if task in ("scanqa", "sqa3d"):
        text = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].rstrip(".").lower()
        words = text.split()
        return " ".join([*words[:-1], singular(words[-1])]) if words else ""
    if task in ("scanrefer", "multi3drefer"):
        ids = [int(m.group(1)) for m in OBJECT_ID_PATTERN.finditer(text)]
        if not ids:
            ids = [int(m.group(0)) for m in _INTEGER.finditer(_ENUMERATIONS.sub(" ", raw)) if int(m.group(0)) < 1000]
        if task == "scanrefer":
            return f"{object_token(ids[0])}." if ids else text
        if not ids or re.match(r"^\s*no\b", text, re.IGNORECASE):
            return "No."
        return multi3drefer_answer(sorted(set(ids)))
    return text


# -- the client and the run ---------------------------------------------------------------------------------------


class EndpointError(RuntimeError):
    """A failed chat request; ``retryable`` for a connection error, a timeout, HTTP 429 or 5xx."""

    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


class ChatClient:
    """An OpenAI-compatible ``/chat/completions`` client. ``base_url`` ends with ``/v1``; the API key is sent as a
    bearer token and never appears in errors or ``repr``. Failures raise ``EndpointError``."""

    def __init__(self, base_url: str, model: str, api_key: str = "", timeout_s: float = 120.0, max_tokens: int = 128):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens

    def __repr__(self) -> str:
        return f"ChatClient(base_url={self.base_url!r}, model={self.model!r})"

    def complete(self, messages: Sequence[dict[str, Any]]) -> str:
        """The assistant's reply to ``messages`` (temperature 0)."""
        body = json.dumps(
            {"model": self.model, "messages": list(messages), "max_tokens": self.max_tokens, "temperature": 0}
        ).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(f"{self.base_url}/chat/completions", body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                reply = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            retryable = exc.code == 429 or exc.code >= 500
            raise EndpointError(
                f"{self.base_url}/chat/completions answered HTTP {exc.code}: {detail}", retryable
            ) from None
        except urllib.error.URLError as exc:
            raise EndpointError(f"cannot reach {self.base_url}: {exc.reason}", retryable=True) from None
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            raise EndpointError(f"{self.base_url}: {type(exc).__name__}: {exc}", retryable=True) from None
        except ValueError as exc:
            raise EndpointError(f"{self.base_url}: the reply is not JSON ({exc})", retryable=False) from None
        try:
            return str(reply["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError) as exc:
            raise EndpointError(f"{self.base_url}: not a chat completion ({exc})", retryable=False) from None


class RetryingCompletion:
    """``complete`` retried up to ``retries`` more times when it raises a retryable ``EndpointError``, waiting
    ``backoff_s``, then twice as long before each next try; ``retried`` counts the retries made (thread-safe).
    Messages logged hold the error, never the request or the key."""

    def __init__(
        self,
        complete: Callable[[list[dict[str, Any]]], str],
        retries: int,
        backoff_s: float,
        log: Log = print,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._complete, self.retries, self.backoff_s, self._log, self._sleep = complete, retries, backoff_s, log, sleep
        self._lock = threading.Lock()
        self.retried = 0

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        attempt = 0
        while True:
            try:
                return self._complete(messages)
            except EndpointError as exc:
                if not exc.retryable or attempt == self.retries:
                    tries = f"after {attempt + 1} tries" if exc.retryable else "(not retried)"
                    raise EndpointError(f"{exc} {tries}", exc.retryable) from None
                wait = self.backoff_s * 2**attempt
                attempt += 1
                with self._lock:
                    self.retried += 1
                self._log(f"retry {attempt} of {self.retries} in {wait:.2f} s: {exc}")
                self._sleep(wait)


def zero_shot_answerer(
    complete: Callable[[list[dict[str, Any]]], str],
    variant: str,
    root: str | Path | None,
    pool: ThreadPoolExecutor,
) -> Callable[[Sequence[EvalRow]], list[str]]:
    """A batch answerer for ``ops.model.inference.predict``: one chat request per row on ``pool``'s threads (at most
    its workers in flight), answers post-processed and in the batch's order."""

    def answer_row(row: EvalRow) -> str:
        return postprocess_answer(row.task, complete(build_messages(row, variant, root)))

    def answer(batch: Sequence[EvalRow]) -> list[str]:
        return list(pool.map(answer_row, batch))

    return answer


def run_zero_shot(
    complete: Callable[[list[dict[str, Any]]], str],
    eval_dir: str | Path,
    out_path: str | Path,
    variant: str = "marked",
    root: str | Path | None = None,
    limit: int | None = None,
    num_chunks: int = 1,
    chunk_index: int = 0,
    log: Log = print,
    concurrency: int = 1,
) -> InferenceStats:
    """Zero-shot predictions of an eval set (resumable, chunked, same JSONL as ``ops.model.inference``).

    Rows go out ``concurrency`` at a time, each batch appended once all its answers are in, in eval-set order, so
    the file is the same whatever the concurrency; an interrupted run loses at most the batch in flight."""
    rows = chunk_rows(read_eval_rows(eval_dir)[:limit], num_chunks, chunk_index)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="zero-shot") as pool:
        answer = zero_shot_answerer(complete, variant, root, pool)
        return predict(rows, answer, out_path, batch_size=concurrency, log=log)


# -- questions about one prepared scene or capture ----------------------------------------------------------------


def scene_images(scene_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(the 2x4 grid of 8 marked frames sampled uniformly from ``frames.json``, the marked BEV) of a prepared scene
    or capture folder (``ops.core.layout.SceneLayout``), RGB."""
    layout = SceneLayout(Path(scene_dir))
    entries = json.loads(layout.frames_meta.read_text())["frames"]
    picked = [entries[i * len(entries) // ZERO_SHOT_FRAMES] for i in range(min(ZERO_SHOT_FRAMES, len(entries)))]
    frames = [cv2.imread(str(layout.frame(entry["file"])), cv2.IMREAD_COLOR_RGB) for entry in picked]
    grid = composite_grid(frames, rows=GRID_ROWS, cols=GRID_COLS)
    return grid, cv2.imread(str(layout.bev_image), cv2.IMREAD_COLOR_RGB)


def question_messages(scene_dir: str | Path, question: str) -> list[dict[str, Any]]:
    """The zero-shot chat of a free question about a prepared scene or capture: the system prompt, the 2x4 grid
    and the BEV, then the question."""
    grid, bev = scene_images(scene_dir)
    parts = [{"type": "image_url", "image_url": {"url": data_url(encode_png(image))}} for image in (grid, bev)]
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": [*parts, {"type": "text", "text": question.strip()}]},
    ]


def named_objects(answer: str, num_objects: int) -> list[int]:
    """The distinct object IDs an answer names as ``<OBJxyz>``, in order, that exist in the scene."""
    ids = [int(match.group(1)) for match in OBJECT_ID_PATTERN.finditer(answer)]
    return [k for n, k in enumerate(ids) if k < num_objects and k not in ids[:n]]
