"""`gpt4scene serve` as a real subprocess on 127.0.0.1 for tests and benchmarks, and small request helpers."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(model_dir: Path, log: Path, *flags: str, name: str = "tiny") -> Iterator[str]:
    """`gpt4scene serve --model model_dir` with ``flags`` until the block ends; yields its ``/v1`` base URL."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, "-m", "pipelines.cli", "serve", "--model", str(model_dir), "--port", str(port)]
    command += ["--name", name, *flags]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    assert json.loads(response.read())["status"] == "ok"
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gpt4scene serve did not come up:\n{log.read_text()}") from None
                time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def png_data_url(seed: int, size: int = 64) -> str:
    """A small random PNG as a data URL."""
    image = np.random.default_rng(seed).integers(0, 255, size=(size, size, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".png", image)
    assert ok
    return "data:image/png;base64," + base64.b64encode(data.tobytes()).decode("ascii")


def chat_body(text: str, image_url: str, max_tokens: int = 8) -> dict:
    """One user message with an image and a question."""
    content = [{"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": text}]
    return {"model": "tiny", "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}


def post(base: str, body: dict, timeout: float = 120) -> tuple[int, dict]:
    """(HTTP status, JSON reply) of a chat completion."""
    request = urllib.request.Request(
        f"{base}/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def answer_of(reply: dict) -> str:
    return reply["choices"][0]["message"]["content"]
