"""`gpt4scene ask` on a synthetic capture: through a real `gpt4scene serve` (tiny random model), and with an endpoint
whose answer names objects, which must give the highlight pictures."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import pytest
from serve_process import running_server

from ops.capture import CaptureSettings, prepare_capture
from ops.synthetic.capture import generate_capture
from pipelines.cli import main

NAMING_ANSWER = "The desk is <OBJ001>; the chair next to it is <OBJ003>."


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    root = tmp_path_factory.mktemp("ask")
    truth = generate_capture(root / "raw" / "captures", "office_walk", 3, layout="exported", n_frames=24)
    out = root / "captures" / "office_walk"
    settings = CaptureSettings(fusion_voxel_size=0.04, fusion_stride=3, n_frames=8, image_resolution=256)
    prepare_capture(truth.capture_dir, out, settings)
    return root


def test_ask_answers_through_a_real_server(capture, tiny_model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GPT4SCENE_VLM_API_KEY", "sk-secret-never-printed")
    with running_server(tiny_model_dir, tmp_path / "serve.log", "--max-tokens", "8") as base:
        flags = ["--endpoint", base, "--model", "tiny", "--root", str(capture), "--out", str(tmp_path / "pictures")]
        status = main(["ask", "office_walk", "Where is the desk?", *flags])
    printed = capsys.readouterr().out
    assert status == 0 and printed.strip()
    assert "sk-secret" not in printed


class _NamingEndpoint(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert [part["type"] for part in body["messages"][1]["content"]] == ["image_url", "image_url", "text"]
        reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": NAMING_ANSWER}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def test_named_objects_are_drawn(capture, tmp_path, capsys):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NamingEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}/v1"
        out = tmp_path / "pictures"
        flags = ["--endpoint", base, "--model", "m", "--root", str(capture), "--out", str(out)]
        status = main(["ask", "office_walk", "Where is the desk?", *flags])
    finally:
        server.shutdown()
    lines = capsys.readouterr().out.splitlines()
    assert status == 0 and lines[0] == NAMING_ANSWER
    assert lines[1] == str(out / "bev_highlight.png") and len(lines) > 2
    for line in lines[1:]:
        image = cv2.imread(line)
        assert image is not None and image.shape[0] > 100
