"""`gpt4scene serve` as a real subprocess on 127.0.0.1, driven over HTTP by the zero-shot client resource."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ops.metrics.eval_sets import load_eval_set, read_predictions, score_suite
from ops.model.inference import read_eval_rows, read_prediction_rows
from ops.model.zero_shot import build_messages, run_zero_shot
from resources.vlm_client import OpenAIChatClient

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    """`gpt4scene serve --model <tiny> --port P` until the module ends; yields the base URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "serve",
        "--model",
        str(tiny_model_dir),
        "--port",
        str(port),
        "--name",
        "tiny",
        "--max-tokens",
        "8",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as response:
                    models = json.loads(response.read())
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gpt4scene serve did not come up:\n{log.read_text()}")
                time.sleep(0.5)
        assert models["data"][0]["id"] == "tiny"
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _post(base: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{base}/chat/completions",
        json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_server_listens_on_loopback_only(server):
    port = int(server.split(":")[2].split("/")[0])
    addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    for address in addresses - {"127.0.0.1"}:
        with socket.socket() as sock, pytest.raises(OSError):
            sock.settimeout(1)
            sock.connect((address, port))


def test_chat_completion_with_images_matches_local_generation(server, eval_data, tiny_model_dir):
    from ops.model.serving import ChatModel, parse_chat_request
    from ops.model.vlm import load_vlm

    row = read_eval_rows(eval_data.eval_dirs["marked"])[0]
    messages = build_messages(row, "marked")
    status, reply = _post(server, {"model": "tiny", "messages": messages, "max_tokens": 8})
    assert status == 200, reply
    assert reply["object"] == "chat.completion" and reply["choices"][0]["message"]["role"] == "assistant"
    assert reply["usage"]["prompt_tokens"] > 2 * 16  # two images of the tiny model's 16 visual tokens at most
    # The same request answered in this process by the same code gives the same greedy text.
    local = ChatModel(load_vlm(tiny_model_dir), "tiny").answer(parse_chat_request({"messages": messages}, 8, 8))
    assert reply["choices"][0]["message"]["content"] == local[0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}
                ]
            },
            "data: URL",
        ),
        ({"messages": [{"role": "user", "content": "hi"}], "stream": True}, "stream"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}, "role 'assistant'"),
        ({"messages": [{"role": "user", "content": "<image> what?"}]}, "must not contain <image>"),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, "not served here"),
    ],
)
def test_bad_requests_get_a_clear_error(server, body, message):
    status, reply = _post(server, body)
    assert status in (400, 404) and message in reply["error"]["message"]


def test_zero_shot_client_round_trips_through_the_server(server, eval_data, tmp_path, monkeypatch):
    monkeypatch.setenv("GPT4SCENE_TEST_VLM_KEY", "sk-test-secret")
    import dagster as dg

    resource = OpenAIChatClient(
        base_url=server, model="tiny", api_key=dg.EnvVar("GPT4SCENE_TEST_VLM_KEY"), max_tokens=8
    )
    with dg.build_resources({"vlm": resource}) as resources:
        client = resources.vlm.client()
        assert "sk-test-secret" not in repr(resources.vlm) + repr(client)
        out = tmp_path / "zero_shot.jsonl"
        eval_dir = eval_data.eval_dirs["marked"]
        rows = read_eval_rows(eval_dir)
        # A few rows of every task, in one run (limit applies in sample_id order, so take the whole set's prefix).
        stats = run_zero_shot(client.complete, eval_dir, out, "marked", limit=len(rows) // 8)
    assert stats.generated == len(rows) // 8
    written = read_prediction_rows(out)
    assert [r["sample_id"] for r in written] == [r.sample_id for r in rows[: len(rows) // 8]]
    scores = score_suite(load_eval_set(eval_dir, eval_data.root), read_predictions(out), tasks=("multi3drefer",))
    assert 0.0 <= scores["multi3drefer"]["f1@0.25"] <= 1.0
    assert all(r["answer"] == "No." or r["answer"].startswith("Yes. <OBJ") for r in written)
