"""An OpenAI-compatible chat server for a saved VLM (optionally with a PEFT adapter), on 127.0.0.1 only.

Endpoints (the subset of the OpenAI API that chat clients use):

- ``GET /v1/models``: ``{"object": "list", "data": [{"id": <model name>, "object": "model", ...}]}``;
- ``GET /health``: ``{"status": "ok", "model": <name>, "pending": <requests queued or running>}``;
- ``POST /v1/chat/completions``: ``messages`` = optional ``system`` messages, then one ``user`` message whose
  ``content`` is a string or a list of ``{"type": "text", "text": ...}`` and ``{"type": "image_url", "image_url":
  {"url": "data:image/...;base64,..."}}`` parts. Parts keep their order: each image becomes one ``<image>`` in the
  user text, exactly as our eval rows put them. ``max_tokens`` (or ``max_completion_tokens``) caps the answer.

Decisions: generation is greedy whatever ``temperature``/``top_p`` say (the evaluation is greedy; sampling would
make answers irreproducible); only one conversation turn is accepted (``ops.model.vlm`` encodes single-turn chats);
images are ``data:`` URLs; an ``http(s)://`` or ``file://`` URL is refused with a 400 unless ``allow_remote_images``
is set (then it is fetched within ``max_body_bytes`` and ``remote_image_timeout_s``); ``stream`` and ``n`` > 1 are
refused with a 400 that says so, and so is text holding one of the model's special tokens (``<|im_end|>``,
``<|image_pad|>``: they would rewrite the chat's structure).

Batching: one model thread answers the queue in batches. It takes the oldest request and, while other requests
are already admitted (still arriving), waits at most ``batch_window_ms`` for them, up to ``max_batch_size``; then
it generates each group of requests with the same system prompt and answer cap as one left-padded greedy batch
(``ops.model.vlm.generate``), so answers are those of the requests sent one at a time. A request that fails its
own checks (tokens, images) fails alone.

Limits (``ServeSettings``): a larger body than ``max_body_bytes`` gets 413; a prompt over ``max_prompt_tokens``,
too many images, an image over ``max_image_pixels`` (a decompression bomb) or any malformed field get 400, never
500; once ``max_pending_requests`` are queued or running a new one gets 503 at once; a generation is stopped after
``generation_timeout_s`` (504). SIGTERM or Ctrl-C stops the server within ``shutdown_grace_s`` plus a moment, even
mid-generation (the model thread is a daemon).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import io
import itertools
import json
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ops.core.settings import setting
from ops.dataset.annotations import IMAGE_PLACEHOLDER, find_special_tokens
from ops.model.vlm import DEFAULT_SYSTEM, encode_chat, generate, load_image, load_vlm

HOST = "127.0.0.1"  # never another interface: the server has no authentication


@dataclass(frozen=True)
class ServeSettings:
    """The server's limits: what one request may ask for, and how much the server takes on at once."""

    max_body_bytes: int = setting(8 * 2**20, "request body limit, bytes (larger: 413)")
    max_prompt_tokens: int = setting(0, "prompt token limit (larger: 400); 0: the context less max_answer_tokens")
    max_answer_tokens: int = setting(1024, "cap on a request's max_tokens")
    max_images: int = setting(64, "images one request may hold (more: 400)")
    max_image_pixels: int = setting(4096 * 4096, "pixels of one decoded image (more, e.g. a decompression bomb: 400)")
    generation_timeout_s: float = setting(60.0, "a generation running longer is stopped and answered 504, seconds")
    max_pending_requests: int = setting(8, "requests queued or running at once; one more is answered 503 at once")
    shutdown_grace_s: int = setting(2, "on SIGTERM, seconds open requests get to finish before they are dropped")
    max_batch_size: int = setting(8, "requests generated together in one batch")
    batch_window_ms: float = setting(20.0, "how long the first request of a batch waits for others, milliseconds")
    allow_remote_images: bool = setting(False, "fetch http(s):// and file:// image URLs (off: refused with 400)")
    remote_image_timeout_s: float = setting(10.0, "timeout of one remote image fetch, seconds")

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool):
                continue
            zero_allowed = ("max_prompt_tokens", "shutdown_grace_s", "batch_window_ms")
            if value < 0 or (value == 0 and item.name not in zero_allowed):
                raise ValueError(f"{item.name} must be positive, got {value}")


class RequestError(ValueError):
    """A request the server cannot answer (HTTP 400 unless ``status`` says otherwise), with the reason."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ChatRequest:
    """A parsed chat request: system prompt, user text with ``<image>`` placeholders, the images' bytes, answer cap."""

    system: str
    user_text: str
    images: tuple[bytes, ...]
    max_tokens: int


REMOTE_SCHEMES = ("http://", "https://", "file://")


def image_bytes(url: Any, settings: ServeSettings) -> bytes:
    """The bytes of an ``image_url``: a base64 ``data:`` URL always; ``http(s)://`` and ``file://`` only when
    ``settings.allow_remote_images`` (fetched within ``max_body_bytes``), refused with a 400 otherwise."""
    if isinstance(url, str) and url.lower().startswith(REMOTE_SCHEMES):
        if not settings.allow_remote_images:
            raise RequestError(
                "remote image URLs (http, https, file) are refused by this server's configuration "
                "(allow_remote_images); send the image as a data: URL"
            )
        return fetch_image(url, settings.max_body_bytes, settings.remote_image_timeout_s)
    return decode_data_url(url)


def fetch_image(url: str, limit: int, timeout_s: float) -> bytes:
    """At most ``limit`` bytes of an ``http(s)://`` or ``file://`` URL (``RequestError`` when larger or unreadable)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            data = response.read(limit + 1)
    except (OSError, ValueError) as exc:
        raise RequestError(f"image URL {url!r} could not be read ({exc})") from exc
    if len(data) > limit:
        raise RequestError(f"image URL {url!r} is larger than the limit of {limit} bytes")
    return data


def decode_data_url(url: str) -> bytes:
    """The bytes of a base64 ``data:`` URL (``data:image/png;base64,...``)."""
    if not isinstance(url, str) or not url.startswith("data:"):
        raise RequestError("image_url must be a data: URL (data:image/...;base64,...)")
    header, _, payload = url.partition(",")
    if not header.endswith(";base64") or not payload:
        raise RequestError("image data: URLs must be base64 encoded (data:image/...;base64,...)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(f"image data: URL is not valid base64 ({exc})") from exc


def _positive_int(body: dict, name: str, default: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(f"{name} must be a positive integer, got {value!r}")
    return value


def _text_of(part: dict) -> str:
    text = part.get("text", "")
    if not isinstance(text, str):
        raise RequestError(f"text must be a string, got {type(text).__name__}")
    return text


def parse_chat_request(body: Any, default_max_tokens: int, settings: ServeSettings = ServeSettings()) -> ChatRequest:
    """Validate an OpenAI chat-completions body into a ``ChatRequest`` (``RequestError`` says what is wrong)."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        raise RequestError("the body must be a JSON object with a non-empty 'messages' list")
    if body.get("stream"):
        raise RequestError("stream=true is not supported")
    if _positive_int(body, "n", 1) != 1:
        raise RequestError("only n=1 is supported")
    systems, users = [], []
    for message in body["messages"]:
        role = message.get("role") if isinstance(message, dict) else None
        if role == "system":
            content = message.get("content")
            parts = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
            systems.append("".join(_text_of(p) for p in parts if isinstance(p, dict)))
        elif role == "user":
            users.append(message.get("content"))
        else:
            raise RequestError(f"only system messages and one user message are supported, got role {role!r}")
    if len(users) != 1:
        raise RequestError(f"exactly one user message is supported (single-turn chat), got {len(users)}")
    content = users[0]
    if not isinstance(content, (str, list)):
        raise RequestError("the user message's content must be a string or a list of parts")
    text, images = [], []
    for part in [{"type": "text", "text": content}] if isinstance(content, str) else content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if IMAGE_PLACEHOLDER in _text_of(part):
                raise RequestError(f"text must not contain {IMAGE_PLACEHOLDER}; send images as image_url parts")
            text.append(_text_of(part))
        elif kind == "image_url":
            if len(images) == settings.max_images:
                raise RequestError(f"at most {settings.max_images} images per request")
            image_url = part.get("image_url")
            images.append(image_bytes(image_url.get("url") if isinstance(image_url, dict) else image_url, settings))
            text.append(IMAGE_PLACEHOLDER)
        else:
            raise RequestError(f"unsupported content part type {kind!r} (text and image_url are)")
    if "max_completion_tokens" in body:
        requested = _positive_int(body, "max_completion_tokens", default_max_tokens)
    else:
        requested = _positive_int(body, "max_tokens", default_max_tokens)
    return ChatRequest(
        "\n".join(systems) or DEFAULT_SYSTEM, "".join(text), tuple(images), min(requested, settings.max_answer_tokens)
    )


def decode_image(data: bytes, max_side: int, max_pixels: int) -> Image.Image:
    """``load_image`` of one request image, refused (``RequestError``) when it does not decode or its header says
    it has more than ``max_pixels`` pixels (checked before any pixel is decoded)."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
        if width * height > max_pixels:
            raise RequestError(f"an image has {width}x{height} pixels, more than the limit of {max_pixels}")
        return load_image(data, max_side)
    except RequestError:
        raise
    except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError, struct.error...
        raise RequestError(f"an image could not be decoded ({type(exc).__name__}: {exc})") from exc


def context_length(vlm: Any) -> int:
    """The model's context window in tokens (``max_position_embeddings`` of its text model)."""
    return int(vlm.model.config.get_text_config().max_position_embeddings)


@dataclass(frozen=True)
class PreparedRequest:
    """A ``ChatRequest`` whose text passed the checks, with its decoded images and prompt length."""

    request: ChatRequest
    images: tuple[Image.Image, ...]
    prompt_tokens: int


class ChatModel:
    """A loaded VLM answering ``ChatRequest``s (greedy, alone or in batches) within ``settings``' limits."""

    def __init__(self, vlm: Any, name: str, image_max_side: int = 512, settings: ServeSettings = ServeSettings()):
        self.vlm = vlm
        self.name = name
        self.image_max_side = image_max_side
        self.settings = settings
        self.max_prompt_tokens = settings.max_prompt_tokens or context_length(vlm) - settings.max_answer_tokens
        self.special_tokens = tuple(vlm.tokenizer.all_special_tokens)
        vlm.model.generation_config.max_time = settings.generation_timeout_s  # transformers' MaxTimeCriteria
        self._lock = threading.Lock()

    def answer(self, request: ChatRequest) -> tuple[str, int, int]:
        """(answer text, prompt tokens, completion tokens) of one request."""
        return self.answer_batch([self.prepare(request)])[0]

    def prepare(self, request: ChatRequest) -> PreparedRequest:
        """Check a request's text and images and count its prompt tokens (``RequestError`` says what is wrong)."""
        for text in (request.system, request.user_text):
            found = find_special_tokens(text, self.special_tokens)
            if found:
                raise RequestError(f"text must not contain the model's special token {found[0]}")
        images = [decode_image(data, self.image_max_side, self.settings.max_image_pixels) for data in request.images]
        with self._lock:
            try:
                encoded = encode_chat(self.vlm, request.user_text, images, system=request.system)
            except ValueError as exc:
                raise RequestError(str(exc)) from exc
        prompt_tokens = int(encoded["input_ids"].numel())
        if prompt_tokens > self.max_prompt_tokens:
            raise RequestError(
                f"the prompt has {prompt_tokens} tokens, more than the limit of {self.max_prompt_tokens}"
            )
        return PreparedRequest(request, tuple(images), prompt_tokens)

    def answer_batch(self, batch: list[PreparedRequest]) -> list[tuple[str, int, int]]:
        """Answers of prepared requests sharing one system prompt and answer cap, generated as one batch."""
        first = batch[0].request
        if any((p.request.system, p.request.max_tokens) != (first.system, first.max_tokens) for p in batch):
            raise ValueError("a batch shares one system prompt and one answer cap")
        with self._lock:
            started = time.monotonic()
            conversations = [(p.request.user_text, list(p.images)) for p in batch]
            answers = generate(self.vlm, conversations, first.max_tokens, system=first.system)
            if time.monotonic() - started >= self.settings.generation_timeout_s:
                raise RequestError(f"generation exceeded {self.settings.generation_timeout_s:g} s", status=504)
        return [
            (answer, p.prompt_tokens, len(self.vlm.tokenizer(answer, add_special_tokens=False)["input_ids"]))
            for answer, p in zip(answers, batch)
        ]


class ModelWorker:
    """One daemon thread answering queued requests in batches (module docstring); at most ``capacity`` are queued
    or running."""

    def __init__(self, model: ChatModel, capacity: int):
        self.model = model
        self.capacity = capacity
        self.max_batch_size = model.settings.max_batch_size
        self.batch_window_s = model.settings.batch_window_ms / 1000.0
        self._jobs: queue.Queue[tuple[Future, ChatRequest]] = queue.Queue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        threading.Thread(target=self._run, name="model", daemon=True).start()

    def admit(self) -> bool:
        """Reserve a place for one request; False when ``capacity`` are already queued or running."""
        with self._pending_lock:
            if self._pending >= self.capacity:
                return False
            self._pending += 1
            return True

    def release(self) -> None:
        """Give back a place ``admit`` reserved (once its request is answered or dropped)."""
        with self._pending_lock:
            self._pending -= 1

    def submit(self, request: ChatRequest) -> Future:
        """Queue ``request`` (its place already admitted); the future holds ``ChatModel.answer``'s result."""
        future: Future = Future()
        self._jobs.put((future, request))
        return future

    @property
    def pending(self) -> int:
        """Requests queued or running."""
        with self._pending_lock:
            return self._pending

    def _next_batch(self) -> list[tuple[Future, ChatRequest]]:
        """The oldest request and those arriving within the batching window, up to ``max_batch_size``. The window
        is waited only while more requests are admitted than taken (a lone client never waits for it)."""
        jobs = [self._jobs.get()]
        deadline = time.monotonic() + self.batch_window_s
        while len(jobs) < self.max_batch_size:
            try:
                jobs.append(self._jobs.get_nowait())
                continue
            except queue.Empty:
                pass
            if self.pending <= len(jobs) or time.monotonic() >= deadline:
                break
            try:
                jobs.append(self._jobs.get(timeout=min(0.002, max(0.0, deadline - time.monotonic()))))
            except queue.Empty:
                continue
        return jobs

    def _run(self) -> None:
        while True:
            groups: dict[tuple[str, int], list[tuple[Future, PreparedRequest]]] = {}
            for future, request in self._next_batch():
                if not future.set_running_or_notify_cancel():
                    continue  # its client is gone
                try:
                    prepared = self.model.prepare(request)
                except BaseException as exc:  # this request's own fault: it fails alone
                    future.set_exception(exc)
                    continue
                groups.setdefault((request.system, request.max_tokens), []).append((future, prepared))
            for group in groups.values():
                try:
                    answers = self.model.answer_batch([prepared for _, prepared in group])
                except BaseException as exc:
                    for future, _ in group:
                        future.set_exception(exc)
                    continue
                for (future, _), answer in zip(group, answers):
                    future.set_result(answer)


async def read_body(request: Any, limit: int) -> bytes:
    """The request body, refused with 413 (``RequestError``) once more than ``limit`` bytes arrived (a chunked body
    announces no length)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"the body is larger than the limit of {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(model: ChatModel, default_max_tokens: int = 128) -> Any:
    """The Starlette app serving ``model`` within ``model.settings``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    settings = model.settings
    worker = ModelWorker(model, settings.max_pending_requests)
    counter = itertools.count(1)

    def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)

    async def models(_: Request) -> JSONResponse:
        return JSONResponse(
            {"object": "list", "data": [{"id": model.name, "object": "model", "created": 0, "owned_by": "gpt4scene"}]}
        )

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": model.name, "pending": worker.pending})

    async def chat(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > settings.max_body_bytes:  # refused before any of it is read
            return error(413, f"the body is larger than the limit of {settings.max_body_bytes} bytes")
        if not worker.admit():
            return JSONResponse(
                {"error": {"message": "the server is busy; retry later", "type": "server_busy"}},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        try:
            body_bytes = await read_body(request, settings.max_body_bytes)
            try:
                body = json.loads(body_bytes)
            except (ValueError, RecursionError):
                return error(400, "the body is not JSON")
            parsed = parse_chat_request(body, default_max_tokens, settings)
            if body.get("model") not in (None, model.name):
                return error(
                    404,
                    f"model {body.get('model')!r} is not served here (this server has {model.name!r})",
                    "not_found_error",
                )
            future = worker.submit(parsed)
            try:
                answer, prompt_tokens, completion_tokens = await asyncio.wrap_future(future)
            except asyncio.CancelledError:  # the client left or the server is stopping: drop it if not started
                future.cancel()
                raise
        except RequestError as exc:
            return error(exc.status, str(exc), "timeout_error" if exc.status == 504 else "invalid_request_error")
        finally:
            worker.release()
        return JSONResponse(
            {
                "id": f"chatcmpl-{next(counter)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    return Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ]
    )


def serve(
    model_dir: str | Path,
    adapter_dir: str | Path | None = None,
    port: int = 8000,
    name: str | None = None,
    image_max_side: int = 512,
    default_max_tokens: int = 128,
    settings: ServeSettings = ServeSettings(),
    log: Callable[[str], None] = print,
) -> None:
    """Load the model and serve it on ``127.0.0.1:port`` until SIGTERM or Ctrl-C."""
    import uvicorn

    vlm = load_vlm(model_dir, adapter_dir)
    model = ChatModel(vlm, name or Path(adapter_dir or model_dir).name, image_max_side, settings)
    log(f"serving {model.name!r} on http://{HOST}:{port}/v1 (POST /v1/chat/completions, GET /v1/models, GET /health)")
    uvicorn.run(
        build_app(model, default_max_tokens),
        host=HOST,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
