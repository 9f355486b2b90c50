"""An OpenAI-compatible chat server for a saved VLM (optionally with a PEFT adapter), on 127.0.0.1 only.

Endpoints (the subset of the OpenAI API that chat clients use):

- ``GET /v1/models``: ``{"object": "list", "data": [{"id": <model name>, "object": "model", ...}]}``;
- ``POST /v1/chat/completions``: ``messages`` = optional ``system`` messages, then one ``user`` message whose
  ``content`` is a string or a list of ``{"type": "text", "text": ...}`` and ``{"type": "image_url", "image_url":
  {"url": "data:image/...;base64,..."}}`` parts. Parts keep their order: each image becomes one ``<image>`` in the
  user text, exactly as our eval rows put them. ``max_tokens`` (or ``max_completion_tokens``) caps the answer.

Decisions: generation is greedy whatever ``temperature``/``top_p`` say (the evaluation is greedy; sampling would
make answers irreproducible); only one conversation turn is accepted (``ops.model.vlm`` encodes single-turn chats);
images must be ``data:`` URLs (the server fetches nothing); ``stream`` and ``n`` > 1 are refused with a 400 that
says so. Requests are answered one at a time (one model, one lock).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.dataset.annotations import IMAGE_PLACEHOLDER
from ops.model.vlm import DEFAULT_SYSTEM, encode_chat, generate, load_image, load_vlm

HOST = "127.0.0.1"  # never another interface: the server has no authentication


class RequestError(ValueError):
    """A request the server cannot answer (HTTP 400), with the reason for the client."""


@dataclass(frozen=True)
class ChatRequest:
    """A parsed chat request: system prompt, user text with ``<image>`` placeholders, the images' bytes, answer cap."""

    system: str
    user_text: str
    images: tuple[bytes, ...]
    max_tokens: int


def decode_data_url(url: str) -> bytes:
    """The bytes of a base64 ``data:`` URL (``data:image/png;base64,...``)."""
    if not isinstance(url, str) or not url.startswith("data:"):
        raise RequestError("image_url must be a data: URL (data:image/...;base64,...); the server fetches nothing")
    header, _, payload = url.partition(",")
    if not header.endswith(";base64") or not payload:
        raise RequestError("image data: URLs must be base64 encoded (data:image/...;base64,...)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(f"image data: URL is not valid base64 ({exc})") from exc


def parse_chat_request(body: Any, default_max_tokens: int, max_tokens_limit: int) -> ChatRequest:
    """Validate an OpenAI chat-completions body into a ``ChatRequest`` (``RequestError`` says what is wrong)."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        raise RequestError("the body must be a JSON object with a non-empty 'messages' list")
    if body.get("stream"):
        raise RequestError("stream=true is not supported")
    if int(body.get("n", 1) or 1) != 1:
        raise RequestError("only n=1 is supported")
    systems, users = [], []
    for message in body["messages"]:
        role = message.get("role") if isinstance(message, dict) else None
        if role == "system":
            content = message.get("content")
            parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
            systems.append("".join(str(p.get("text", "")) for p in parts if isinstance(p, dict)))
        elif role == "user":
            users.append(message.get("content"))
        else:
            raise RequestError(f"only system messages and one user message are supported, got role {role!r}")
    if len(users) != 1:
        raise RequestError(f"exactly one user message is supported (single-turn chat), got {len(users)}")
    text, images = [], []
    content = users[0]
    for part in [{"type": "text", "text": content}] if isinstance(content, str) else content or []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if IMAGE_PLACEHOLDER in str(part.get("text", "")):
                raise RequestError(f"text must not contain {IMAGE_PLACEHOLDER}; send images as image_url parts")
            text.append(str(part.get("text", "")))
        elif kind == "image_url":
            image_url = part.get("image_url")
            images.append(decode_data_url(image_url.get("url") if isinstance(image_url, dict) else image_url))
            text.append(IMAGE_PLACEHOLDER)
        else:
            raise RequestError(f"unsupported content part type {kind!r} (text and image_url are)")
    requested = body.get("max_completion_tokens", body.get("max_tokens")) or default_max_tokens
    if not isinstance(requested, int) or requested < 1:
        raise RequestError("max_tokens must be a positive integer")
    return ChatRequest(
        "\n".join(systems) or DEFAULT_SYSTEM, "".join(text), tuple(images), min(requested, max_tokens_limit)
    )


class ChatModel:
    """A loaded VLM answering ``ChatRequest``s one at a time (greedy)."""

    def __init__(self, vlm: Any, name: str, image_max_side: int = 512):
        self.vlm = vlm
        self.name = name
        self.image_max_side = image_max_side
        self._lock = threading.Lock()

    def answer(self, request: ChatRequest) -> tuple[str, int, int]:
        """(answer text, prompt tokens, completion tokens)."""
        try:
            images = [load_image(data, self.image_max_side) for data in request.images]
        except OSError as exc:
            raise RequestError(f"an image could not be decoded ({exc})") from exc
        with self._lock:
            try:
                prompt_tokens = int(
                    encode_chat(self.vlm, request.user_text, images, system=request.system)["input_ids"].numel()
                )
            except ValueError as exc:
                raise RequestError(str(exc)) from exc
            answer = generate(self.vlm, [(request.user_text, images)], request.max_tokens, system=request.system)[0]
        completion_tokens = len(self.vlm.tokenizer(answer, add_special_tokens=False)["input_ids"])
        return answer, prompt_tokens, completion_tokens


def build_app(model: ChatModel, default_max_tokens: int = 128, max_tokens_limit: int = 1024) -> Any:
    """The Starlette app serving ``model``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    counter = itertools.count(1)

    def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)

    async def models(_: Request) -> JSONResponse:
        return JSONResponse(
            {"object": "list", "data": [{"id": model.name, "object": "model", "created": 0, "owned_by": "gpt4scene"}]}
        )

    async def chat(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return error(400, "the body is not JSON")
        try:
            parsed = parse_chat_request(body, default_max_tokens, max_tokens_limit)
            if body.get("model") not in (None, model.name):
                return error(
                    404,
                    f"model {body.get('model')!r} is not served here (this server has {model.name!r})",
                    "not_found_error",
                )
            answer, prompt_tokens, completion_tokens = await run_in_threadpool(model.answer, parsed)
        except RequestError as exc:
            return error(400, str(exc))
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
        routes=[Route("/v1/models", models, methods=["GET"]), Route("/v1/chat/completions", chat, methods=["POST"])]
    )


def serve(
    model_dir: str | Path,
    adapter_dir: str | Path | None = None,
    port: int = 8000,
    name: str | None = None,
    image_max_side: int = 512,
    default_max_tokens: int = 128,
    log: Callable[[str], None] = print,
) -> None:
    """Load the model and serve it on ``127.0.0.1:port`` until interrupted."""
    import uvicorn

    vlm = load_vlm(model_dir, adapter_dir)
    model = ChatModel(vlm, name or Path(adapter_dir or model_dir).name, image_max_side)
    log(f"serving {model.name!r} on http://{HOST}:{port}/v1 (POST /v1/chat/completions, GET /v1/models)")
    uvicorn.run(build_app(model, default_max_tokens), host=HOST, port=port, log_level="warning")
