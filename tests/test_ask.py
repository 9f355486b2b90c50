"""`gpt4scene ask` on a synthetic capture: through a real `gpt4scene serve` (tiny random model), with an endpoint
whose answer names objects, which must give the highlight pictures, and with an experiment's local checkpoint; and
the same through the `ask_answer` asset, its pictures shown in the metadata."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import dagster as dg
import pytest
from serve_process import running_server

from assets.ask import ask_answer
from ops.capture import CaptureSettings, prepare_capture
from ops.synthetic.capture import generate_capture
from pipelines.cli import main
from resources.storage import StorageRoot

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


@pytest.fixture
def naming_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NamingEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_named_objects_are_drawn(capture, naming_endpoint, tmp_path, capsys):
    out = tmp_path / "pictures"
    flags = ["--endpoint", naming_endpoint, "--model", "m", "--root", str(capture), "--out", str(out)]
    status = main(["ask", "office_walk", "Where is the desk?", *flags])
    lines = capsys.readouterr().out.splitlines()
    assert status == 0 and lines[0] == NAMING_ANSWER
    assert lines[1] == str(out / "bev_highlight.png") and len(lines) > 2
    for line in lines[1:]:
        image = cv2.imread(line)
        assert image is not None and image.shape[0] > 100


@pytest.fixture(scope="module")
def checkpoints(capture, tiny_model_dir):
    """Version v0001 of two experiments under the capture's root: `base` (only lineage.json: the base model
    answers) and `tiny_marked` (a fresh LoRA adapter on the tiny model)."""
    from peft import LoraConfig, get_peft_model

    from ops.model.vlm import load_vlm

    folder = capture / "models" / "checkpoints"
    model = get_peft_model(load_vlm(tiny_model_dir).model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(folder / "tiny_marked" / "v0001")
    for experiment, kind in (("base", "base_model"), ("tiny_marked", "trained")):
        (folder / experiment / "v0001").mkdir(parents=True, exist_ok=True)
        lineage = {"version": "v0001", "checkpoint": kind, "base_model": {"path": str(tiny_model_dir)}}
        (folder / experiment / "v0001" / "lineage.json").write_text(json.dumps(lineage))
    return folder


@pytest.mark.parametrize("experiment", ["base", "tiny_marked"])
def test_ask_answers_with_an_experiments_local_checkpoint(capture, checkpoints, experiment, tmp_path, capsys):
    flags = ["--experiment", experiment, "--max-tokens", "6", "--root", str(capture), "--out", str(tmp_path)]
    status = main(["ask", "office_walk", "What is in the room?", *flags])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.out.strip()


def _ask_metadata(capture, instance, **config):
    result = dg.materialize(
        [ask_answer],
        instance=instance,
        run_config={"ops": {"ask_answer": {"config": {"target": "office_walk", **config}}}},
        resources={"storage": StorageRoot(root=str(capture))},
    )
    assert result.success
    metadata = result.asset_materializations_for_node("ask_answer")[0].metadata
    return result, {key: value.value for key, value in metadata.items()}


def test_the_answer_is_an_asset_with_its_pictures_in_the_metadata(capture, checkpoints, naming_endpoint, monkeypatch):
    monkeypatch.setenv("GPT4SCENE_VLM_API_KEY", "sk-asset-secret-never-shown")
    question = {"question": "Where is the desk?", "endpoint": naming_endpoint, "model": "m"}
    instance = dg.DagsterInstance.ephemeral()
    result, metadata = _ask_metadata(capture, instance, **question)
    assert metadata["answer"] == NAMING_ANSWER and metadata["named_objects"] == [1, 3]
    assert metadata["answered_by"] == f"m @ {naming_endpoint}"
    paths = metadata["picture_paths"]
    assert paths[0] == str(capture / "ask" / "office_walk" / "bev_highlight.png") and len(paths) > 1
    pictures = metadata["pictures"]
    assert pictures.count("](data:image/jpeg;base64,") == len(paths) and len(pictures) <= 31_000
    events = "".join(dg.serialize_value(entry) for entry in instance.all_logs(result.run_id))
    assert "sk-asset-secret" not in events

    # Asked again with the base experiment, whose answer names no object: the earlier pictures are gone.
    _, again = _ask_metadata(capture, instance, question="What is in the room?", experiment="base", max_tokens=6)
    assert again["answered_by"] == "base v0001" and again["picture_paths"] == again["named_objects"] == []
    assert not list((capture / "ask" / "office_walk").glob("*.png"))
