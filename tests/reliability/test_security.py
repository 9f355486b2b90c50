"""Security defaults: local Ray on loopback only, scene ids validated before any path, no unpickling of files,
secrets only from the environment and never in logs, events or metadata."""

from __future__ import annotations

import http.server
import ipaddress
import json
import os
import re
import sys
import tempfile
import threading
from pathlib import Path

import dagster as dg
import pytest

from assets.partitions import scene_partitions
from assets.raw_scans import raw_scan
from ops.core.errors import SceneInputError
from pipelines.sensors import discover_scenes, scene_discovery_sensor
from resources.ray import SceneRay
from resources.storage import StorageRoot
from resources.vlm_client import OpenAIChatClient

PROJECT_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_DIR / "tests" / "ui"))
from uiproc import descendants, listening_addresses  # noqa: E402

HOSTILE = ["..", "../x", "a/b", "a,b", "scene 1", "scène", "a;rm -rf", "$(id)", "x" * 65, ".hidden", ""]


def _is_loopback(host: str) -> bool:
    address = ipaddress.ip_address(host)
    return address.is_loopback or bool(getattr(address, "ipv4_mapped", None) and address.ipv4_mapped.is_loopback)


def test_local_ray_listens_on_loopback_only():
    # set by the Makefile and CLI (docs/REFERENCE.md §5.4)
    assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0"
    seen: dict[str, set] = {}

    @dg.asset
    def ray_sockets(ray_cluster: SceneRay) -> None:
        import ray

        ray.get(ray.remote(lambda: 1).remote())  # a worker is up, so every Ray process has bound its ports
        seen["addresses"] = listening_addresses({os.getpid()} | descendants(os.getpid()))

    with tempfile.TemporaryDirectory(prefix="g4s-ray-", dir="/tmp") as ray_tmp:
        assert dg.materialize([ray_sockets], resources={"ray_cluster": SceneRay(temp_dir=ray_tmp)}).success
    assert seen["addresses"], "found no Ray listening socket"
    assert all(_is_loopback(host) for host, _ in seen["addresses"]), seen["addresses"]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_ids_never_reach_a_path(tmp_path, hostile):
    storage = StorageRoot(root=str(tmp_path))
    with pytest.raises(SceneInputError, match="invalid scene id"):
        storage.raw_scene_dir(hostile)
    with pytest.raises(SceneInputError, match="invalid scene id"):
        storage.scene_dir(hostile)


def test_sensor_and_observation_refuse_hostile_ids(tmp_path):
    scans = tmp_path / "raw" / "scans"
    for name in [n for n in HOSTILE if n and "/" not in n and n != ".."]:
        (scans / name).mkdir(parents=True)
    storage = StorageRoot(root=str(tmp_path), raw_root=str(tmp_path / "raw"))
    found = discover_scenes(scans)
    assert not found.valid and set(found.invalid) == {p.name for p in scans.iterdir() if not p.name.startswith(".")}
    instance = dg.DagsterInstance.ephemeral()
    result = scene_discovery_sensor(dg.build_sensor_context(instance=instance, resources={"storage": storage}))
    assert not result.dynamic_partitions_requests and not result.run_requests

    # A hostile key registered by hand (e.g. the UI's "Add partition") is refused by the observation, which goes on.
    instance.add_dynamic_partitions(scene_partitions.name, ["../../etc", "scene_ok"])
    job = dg.Definitions(assets=[raw_scan], resources={"storage": storage}).resolve_implicit_global_asset_job_def()
    outcome = job.execute_in_process(instance=instance)
    observed = {
        e.event_specific_data.asset_observation.partition
        for e in outcome.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    }
    assert observed == {"scene_ok"}
    assert any("invalid scene id '../../etc'" in r.user_message for r in instance.all_logs(outcome.run_id))


UNSAFE = [
    (re.compile(r"\bpickle\.loads?\("), "pickle.load"),
    (re.compile(r"\bdill\.loads?\(|\bjoblib\.load\("), "dill/joblib load"),
    (re.compile(r"\bnp\.load\([^)]*allow_pickle\s*=\s*True"), "np.load(allow_pickle=True)"),
    (re.compile(r"\btorch\.load\((?![^)]*weights_only\s*=\s*True)[^)]*\)"), "torch.load without weights_only=True"),
]


def test_no_unpickling_in_the_source_tree():
    """Checkpoints, proposals and arrays are read without pickle (an untrusted file could run code). Tests are left
    out: they craft pickled files on purpose, to check that the readers refuse them."""
    offenders = []
    for path in sorted(PROJECT_DIR.rglob("*.py")):
        relative = path.relative_to(PROJECT_DIR)
        if relative.parts[0] in {"build", "data", "dagster_home", "tests"} or relative.parts[0].startswith("."):
            continue
        text = path.read_text(encoding="utf-8")
        for pattern, what in UNSAFE:
            for match in pattern.finditer(text):
                offenders.append(f"{relative}:{text.count(chr(10), 0, match.start()) + 1}: {what}")
    assert not offenders, offenders


def test_patterns_catch_what_they_should():
    unsafe = [
        "torch.load(path)",
        "torch.load(path, map_location='cpu')",
        "pickle.load(f)",
        "np.load(p, allow_pickle=True)",
    ]
    safe = ["torch.load(path, weights_only=True)", "np.load(p, allow_pickle=False)"]
    assert all(any(p.search(s) for p, _ in UNSAFE) for s in unsafe)
    assert not any(p.search(s) for p, _ in UNSAFE for s in safe)


class _ChatEndpoint(http.server.BaseHTTPRequestHandler):
    authorizations: list[str] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).authorizations.append(self.headers.get("Authorization", ""))
        body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "a chair"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_planted_secret_never_reaches_logs_events_or_metadata(tmp_path, monkeypatch, capfd):
    secret = "sk-planted-" + os.urandom(12).hex()
    monkeypatch.setenv("GPT4SCENE_VLM_API_KEY", secret)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ChatEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    @dg.asset
    def zero_shot_probe(context, vlm: OpenAIChatClient) -> dg.MaterializeResult:
        answer = vlm.client().complete([{"role": "user", "content": "what is this?"}])
        context.log.info(f"asked {vlm!r} via {vlm.client()!r}: {answer}")  # a careless log line must stay safe
        return dg.MaterializeResult(metadata={"endpoint": dg.MetadataValue.json(vlm.public_settings), "answer": answer})

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    resources = {
        "vlm": OpenAIChatClient(
            base_url=f"http://127.0.0.1:{server.server_port}/v1",
            model="probe",
            api_key=dg.EnvVar("GPT4SCENE_VLM_API_KEY"),
        )
    }
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        result = dg.materialize([zero_shot_probe], resources=resources, instance=instance)
        assert result.success
        records = instance.all_logs(result.run_id)
        run = instance.get_run_by_id(result.run_id)
        stored = (
            dg.serialize_value([r.dagster_event for r in records if r.dagster_event])
            + json.dumps([r.user_message for r in records])
            + dg.serialize_value(run)
        )
    server.shutdown()
    assert _ChatEndpoint.authorizations == [f"Bearer {secret}"]  # the key was really used
    assert secret not in stored
    on_disk = [p for p in home.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert not on_disk, on_disk  # event log, run storage and compute logs of the instance
    captured = capfd.readouterr()
    assert secret not in captured.out and secret not in captured.err
