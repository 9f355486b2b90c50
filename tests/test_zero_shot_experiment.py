"""The zero-shot experiment kind: `predictions` → `eval_scores` → `leaderboard` of `recipes/experiments/
zero_shot_serve.yaml` through a real `gpt4scene serve` (tiny model), with an in-process proxy in front of it that
counts the requests and can answer 503 (one request, or every request after some answers). Checks resuming after
an interrupted run, retries, the API key kept out of every record; and, cheaply, the bound on requests in flight."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.error
import urllib.request
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from serve_process import running_server

from assets.evaluation import build_evaluation_assets
from assets.leaderboard import build_leaderboard_asset
from ops.model.experiments import load_experiment
from ops.model.inference import read_eval_rows, read_prediction_rows
from ops.model.zero_shot import EndpointError, RetryingCompletion, run_zero_shot
from resources.storage import StorageRoot
from resources.training import PROJECT_DIR, BaseModelSource

EXPERIMENT = "zero_shot_serve"
LIMIT = 6  # eval rows answered: keeps the test short
ALLOWED_BEFORE_OUTAGE = 5  # answers the proxy lets through before it answers 503 to everything
SECRET = "sk-zero-shot-secret-5f1c9e"


class Proxy:
    """An HTTP proxy to ``backend`` (a ``/v1`` base URL) counting the chat requests it forwards; ``fail_next``
    requests get 503, and once ``allowed`` (when not None) reaches 0, every request does."""

    def __init__(self, backend: str):
        self.backend, self.lock = backend, threading.Lock()
        self.forwarded, self.refused, self.fail_next, self.allowed = 0, 0, 0, None
        self.authorization: set[str] = set()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, reply = proxy.handle(body, self.headers.get("Authorization", ""))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, body: bytes, authorization: str) -> tuple[int, bytes]:
        with self.lock:
            self.authorization.add(authorization)
            refuse = self.fail_next > 0 or self.allowed == 0
            if refuse:
                self.fail_next = max(0, self.fail_next - 1)
                self.refused += 1
            else:
                self.forwarded += 1
                self.allowed = None if self.allowed is None else self.allowed - 1
        if refuse:
            return 503, json.dumps({"error": {"message": "unavailable"}}).encode()
        request = urllib.request.Request(
            f"{self.backend}/chat/completions", body, {"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def reset(self) -> None:
        with self.lock:
            self.forwarded, self.refused, self.fail_next, self.allowed = 0, 0, 0, None


@pytest.fixture(scope="module")
def proxy(tiny_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("zero_shot_serve") / "serve.log"
    with running_server(tiny_model_dir, log, "--max-tokens", "8") as base:
        proxy = Proxy(base)
        yield proxy
        proxy.server.shutdown()


def _root(eval_data, folder):
    for name in ("scenes", "dataset"):
        shutil.copytree(eval_data.root / name, folder / name)
    return folder


def _materialize(assets, root, instance, partition=True):
    return dg.materialize(
        assets,
        instance=instance,
        partition_key=EXPERIMENT if partition else None,
        run_config={"ops": {"predictions": {"config": {"max_new_tokens": 8, "limit": LIMIT}}}} if partition else None,
        resources={"storage": StorageRoot(root=str(root)), "base_model_source": BaseModelSource()},
        raise_on_error=False,
    )


def _metadata(result, asset):
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[0].metadata.items()}


def test_zero_shot_experiment_resumes_retries_and_gets_its_leaderboard_row(
    proxy, eval_data, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("GPT4SCENE_ZERO_SHOT_URL", proxy.url)
    monkeypatch.setenv("GPT4SCENE_VLM_API_KEY", SECRET)
    project = load_experiment(PROJECT_DIR / "recipes" / "experiments" / f"{EXPERIMENT}.yaml")
    assert project.kind == "zero_shot" and project.endpoint.concurrency == 4 and project.endpoint.retries == 3
    # The project's file, with a short backoff so the interrupted run gives up quickly.
    experiment = replace(project, endpoint=replace(project.endpoint, backoff_s=0.05))
    predictions, eval_scores = build_evaluation_assets({EXPERIMENT: experiment})
    leaderboard = build_leaderboard_asset({EXPERIMENT: experiment})
    instance = dg.DagsterInstance.ephemeral()

    # An uninterrupted run; its one 503 is retried.
    reference = _root(eval_data, tmp_path / "reference")
    proxy.fail_next = 1
    whole = _materialize([predictions], reference, instance)
    assert whole.success
    assert _metadata(whole, "predictions")["retried"] == 1 and proxy.refused == 1 and proxy.forwarded == LIMIT

    # Interrupted: after 5 answers the endpoint answers 503 to everything; the run fails after its retries.
    root = _root(eval_data, tmp_path / "interrupted")
    proxy.reset()
    proxy.allowed = ALLOWED_BEFORE_OUTAGE
    failed = _materialize([predictions], root, instance)
    assert not failed.success
    error = failed.get_step_failure_events()[0].step_failure_data.error
    message = error.message + "".join((error.cause.message,) if error.cause else ())
    assert "HTTP 503" in message and f"after {project.endpoint.retries + 1} tries" in message
    chunk = root / "evaluation" / "predictions" / EXPERIMENT / "predictions_chunk_0_of_1.jsonl"
    kept = len(read_prediction_rows(chunk))
    # Batches of 4 (the concurrency) are appended whole: the first went in, the second's one answer was lost.
    assert kept == 4

    # Resumed: only the rows not yet answered are asked.
    proxy.reset()
    resumed = _materialize([predictions, eval_scores], root, instance)
    assert resumed.success
    assert proxy.forwarded == LIMIT - kept and _metadata(resumed, "predictions")["generated"] == LIMIT - kept
    answers = root / "evaluation" / "predictions" / EXPERIMENT / "predictions.jsonl"
    assert (
        answers.read_bytes()
        == (reference / "evaluation" / "predictions" / EXPERIMENT / "predictions.jsonl").read_bytes()
    )
    run = json.loads((answers.parent / "run.json").read_text())
    assert run["endpoint"] == {"base_url": proxy.url, "model": "tiny"} and "model" not in run
    assert run["answered"]["model"] == f"tiny @ {proxy.url}" and run["answered"]["checkpoint"] == "endpoint"
    scores = _metadata(resumed, "eval_scores")
    assert scores["checkpoint_version"] == "endpoint"

    board = _materialize([leaderboard], root, instance, partition=False)
    assert board.success
    rows = json.loads((root / "evaluation" / "leaderboard.json").read_text())["rows"]
    ours = [row for row in rows if row["experiment"] == EXPERIMENT]
    assert len(ours) == 1 and ours[0]["kind"] == "zero-shot" and ours[0]["finetuning"] == "zero-shot"
    assert ours[0]["base_model"] == f"tiny @ {proxy.url}" and ours[0]["train_shards"] is None
    assert f"| {EXPERIMENT} | endpoint |" in _metadata(board, "leaderboard")["leaderboard"]

    # The key went out as the bearer token, and nowhere else: not in the event log, run.json or any file written.
    assert proxy.authorization == {f"Bearer {SECRET}"}
    for result in (whole, failed, resumed, board):
        assert SECRET not in "".join(dg.serialize_value(entry) for entry in instance.all_logs(result.run_id))
    for folder in (root, reference):
        for path in folder.joinpath("evaluation").rglob("*"):
            assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path
    printed = capsys.readouterr()
    assert SECRET not in printed.out + printed.err


def test_requests_in_flight_never_exceed_the_concurrency(eval_data, tmp_path):
    eval_dir = eval_data.eval_dirs["marked"]
    # With concurrency 3, each request waits until three are in flight: the test shows that three run at once
    # whatever the machine's load (with fewer, the barrier times out and the run fails).
    lock, state = threading.Lock(), {"now": 0, "max": 0, "barrier": threading.Barrier(3, timeout=30)}

    def complete(messages):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        if state["barrier"] is not None:
            state["barrier"].wait()
        with lock:
            state["now"] -= 1
        return messages[1]["content"][-1]["text"][:40]  # the question: a different answer per row

    stats = run_zero_shot(complete, eval_dir, tmp_path / "three.jsonl", root=eval_data.root, limit=12, concurrency=3)
    assert stats.generated == 12 and state["max"] == 3
    state["barrier"] = None
    run_zero_shot(complete, eval_dir, tmp_path / "one.jsonl", root=eval_data.root, limit=12, concurrency=1)
    assert (tmp_path / "three.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()  # eval-set order
    assert [r["sample_id"] for r in read_prediction_rows(tmp_path / "one.jsonl")] == [
        r.sample_id for r in read_eval_rows(eval_dir)[:12]
    ]


def test_only_connection_errors_429_and_5xx_are_retried_with_doubling_backoff():
    waits, logged = [], []
    failures = [EndpointError("HTTP 503", True), EndpointError("HTTP 429", True)]

    def flaky(messages):
        if failures:
            raise failures.pop(0)
        return "ok"

    complete = RetryingCompletion(flaky, retries=3, backoff_s=0.5, log=logged.append, sleep=waits.append)
    assert complete([]) == "ok" and waits == [0.5, 1.0] and complete.retried == 2 and len(logged) == 2

    def refused(messages):
        raise EndpointError("HTTP 400: bad request", False)

    with pytest.raises(EndpointError, match="not retried"):
        RetryingCompletion(refused, retries=3, backoff_s=0.5, sleep=waits.append)([])

    def down(messages):
        raise EndpointError("cannot reach http://127.0.0.1:9/v1", True)

    waits.clear()
    with pytest.raises(EndpointError, match="after 3 tries"):
        RetryingCompletion(down, retries=2, backoff_s=0.1, log=logged.append, sleep=waits.append)([])
    assert waits == [0.1, 0.2]


def test_zero_shot_experiment_files_are_validated(tmp_path, monkeypatch):
    head = "### experiment\ndata_variant: marked\n"
    (tmp_path / "ok.yaml").write_text(head + "endpoint:\n  base_url: http://h:1/v1\n  model: m\n  api_key_env: K\n")
    experiment = load_experiment(tmp_path / "ok.yaml")
    assert experiment.kind == "zero_shot" and not experiment.trains
    monkeypatch.setenv("K", SECRET)
    assert experiment.endpoint.api_key() == SECRET and SECRET not in repr(experiment) + json.dumps(experiment.summary())
    for body, match in (
        ("train: true\nendpoint:\n  base_url: http://h/v1\n  model: m\n", "trains nothing"),
        ("endpoint:\n  base_url: ftp://h/v1\n  model: m\n", "base_url"),
        ("endpoint:\n  base_url: http://h/v1\n", "model"),
        ("endpoint:\n  base_url: http://h/v1\n  model: m\n  concurrency: 0\n", "concurrency"),
        ("endpoint:\n  base_url: http://h/v1\n  model: m\n  api_key_env: sk-123\n", "api_key_env"),
        ("endpoint:\n  base_url: http://h/v1\n  model: m\n  api_key: sk-123\n", "unknown endpoint keys"),
    ):
        (tmp_path / "bad.yaml").write_text(head + body)
        with pytest.raises(ValueError, match=match) as caught:
            load_experiment(tmp_path / "bad.yaml")
        assert "sk-123" not in str(caught.value)  # a key pasted in the wrong place is not repeated
