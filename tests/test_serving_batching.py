"""`gpt4scene serve` batching, health and remote images, against a real server subprocess (tiny model)."""

from __future__ import annotations

import base64
import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from serve_process import answer_of, chat_body, png_data_url, post, running_server

from ops.model.serving import RequestError, ServeSettings, image_bytes


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve_batching") / "serve.log"
    with running_server(tiny_model_dir, log, "--max-tokens", "8", "--batch-window-ms", "50") as base:
        yield base


def test_concurrent_requests_get_the_answers_they_get_alone(server):
    bodies = [chat_body(f"What is in picture {i}?", png_data_url(i)) for i in range(6)]
    alone = [post(server, body) for body in bodies]
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda body: post(server, body), bodies))
    assert [status for status, _ in alone + together] == [200] * 12
    assert [answer_of(reply) for _, reply in together] == [answer_of(reply) for _, reply in alone]
    assert [reply["usage"] for _, reply in together] == [reply["usage"] for _, reply in alone]


def test_a_bad_request_in_a_batch_fails_alone(server):
    good = chat_body("Describe it.", png_data_url(1))
    bad = chat_body("Describe it.", "data:image/png;base64,aGVsbG8=")  # base64 of "hello": not an image
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda body: post(server, body), [good, bad, good, bad]))
    assert [status for status, _ in replies] == [200, 400, 200, 400]
    assert "could not be decoded" in replies[1][1]["error"]["message"]


def test_health_endpoint(server):
    with urllib.request.urlopen(server.removesuffix("/v1") + "/health", timeout=10) as response:
        assert json.loads(response.read()) == {"status": "ok", "model": "tiny", "pending": 0}


def test_remote_image_urls_are_refused_unless_configured(server, tmp_path):
    for url in ("http://127.0.0.1:9/cat.png", "file:///etc/passwd", "HTTPS://example.com/x.png"):
        status, reply = post(server, chat_body("What is it?", url))
        assert status == 400 and "refused by this server's configuration" in reply["error"]["message"]


def test_remote_images_are_fetched_when_allowed(tmp_path):
    picture = tmp_path / "p.png"
    data = png_data_url(3).split(",", 1)[1]
    picture.write_bytes(base64.b64decode(data))
    allowed = ServeSettings(allow_remote_images=True)
    assert image_bytes(picture.as_uri(), allowed) == picture.read_bytes()
    assert image_bytes(png_data_url(3), ServeSettings()) == picture.read_bytes()  # data URLs: always
    with pytest.raises(RequestError, match="larger than the limit"):
        image_bytes(picture.as_uri(), ServeSettings(allow_remote_images=True, max_body_bytes=10))
    with pytest.raises(RequestError, match="could not be read"):
        image_bytes((tmp_path / "missing.png").as_uri(), allowed)


def test_batch_settings_are_validated():
    with pytest.raises(ValueError, match="max_batch_size"):
        ServeSettings(max_batch_size=0)
    assert ServeSettings(batch_window_ms=0).batch_window_ms == 0
