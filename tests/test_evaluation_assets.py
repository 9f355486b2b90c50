"""`predictions` → `eval_scores` per experiment partition, materialised in process on a real instance, with the tiny
model as the base experiment and a zero-initialised LoRA as the trained experiments' checkpoint."""

from __future__ import annotations

import hashlib
import json
import shutil

import dagster as dg
import pytest

from assets.evaluation import eval_scores, predictions
from ops.metrics.scoring import compare_to_base
from ops.model.inference import read_prediction_rows
from resources.storage import StorageRoot
from resources.training import BaseModelSource

LIMIT = 10  # rows per eval set: keeps the test short; the scorers still score every benchmark's items
BENCHMARKS = ["multi3drefer", "scan2cap", "scanqa", "scanrefer", "sqa3d"]


@pytest.fixture(scope="module")
def storage_root(eval_data, tiny_model_dir, tmp_path_factory):
    """A copy of the eval data's root with `models/base/` (the tiny model) and, as version v0001 of the project's
    tiny experiments, a fresh LoRA adapter (B = 0, so it answers exactly as the base model) with a lineage.json;
    the base experiment's v0001 holds only its lineage.json."""
    from peft import LoraConfig, get_peft_model

    from ops.model.vlm import load_vlm

    root = tmp_path_factory.mktemp("evaluation") / "root"
    for folder in ("scenes", "dataset"):
        shutil.copytree(eval_data.root / folder, root / folder)
    shutil.copytree(tiny_model_dir, root / "models" / "base")
    model = get_peft_model(load_vlm(tiny_model_dir).model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    checkpoints = root / "models" / "checkpoints"
    for experiment in ("tiny_marked", "tiny_unmarked"):
        model.save_pretrained(checkpoints / experiment / "v0001")
    for experiment in ("tiny_marked", "tiny_unmarked", "base"):
        (checkpoints / experiment / "v0001").mkdir(parents=True, exist_ok=True)
        (checkpoints / experiment / "v0001" / "lineage.json").write_text(json.dumps({"version": "v0001"}))
    return root


def _materialize(root, instance, experiment, **config):
    run_config = {"ops": {"predictions": {"config": {"max_new_tokens": 4, "limit": LIMIT, **config}}}}
    return dg.materialize(
        [predictions, eval_scores],
        instance=instance,
        run_config=run_config,
        partition_key=experiment,
        resources={"storage": StorageRoot(root=str(root)), "base_model_source": BaseModelSource()},
    )


def _files(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.mark.slow
def test_each_experiment_is_answered_and_scored_on_its_own_variant(storage_root):
    instance = dg.DagsterInstance.ephemeral()
    evaluation = storage_root / "evaluation"
    assert _materialize(storage_root, instance, "base").success
    base_files = _files(evaluation / "scores" / "base")
    result = _materialize(storage_root, instance, "tiny_marked")
    assert result.success
    unmarked = _materialize(storage_root, instance, "tiny_unmarked")
    assert _files(evaluation / "scores" / "base") == base_files  # another experiment's files are never rewritten

    for experiment, variant in (("base", "marked"), ("tiny_marked", "marked"), ("tiny_unmarked", "unmarked")):
        run = json.loads((evaluation / "predictions" / experiment / "run.json").read_text())
        assert run["complete"] and run["answered"]["variant"] == variant and run["answered"]["checkpoint"] == "v0001"
        assert run["rows"] == LIMIT and len(read_prediction_rows(run["answered"]["predictions"])) == LIMIT
        assert sorted(p.stem for p in (evaluation / "scores" / experiment).glob("*.json")) == sorted(
            [*BENCHMARKS, "summary"]
        )
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["all_benchmarks_scored"].passed
    # The zero-initialised adapter answers as the base model does: no better than base, so the check fails.
    assert not checks["beats_base_model"].passed
    assert checks["beats_base_model"].metadata["benchmarks_beaten"].value == 0
    metadata = result.asset_materializations_for_node("eval_scores")[0].metadata
    assert "| scanqa | cider | 96.3 |" in metadata["scores"].value and "tiny_marked" in metadata["scores"].value
    assert {"scanqa/cider", "sqa3d/em", "scanrefer/acc@0.25", "multi3drefer/f1@0.25", "scan2cap/cider@0.50"} <= set(
        metadata
    )
    assert unmarked.asset_materializations_for_node("predictions")[0].metadata["eval_set"].value == "unmarked"
    # `limit` answered LIMIT rows: the rest are counted before scoring, in the metadata and summary.json.
    missing = metadata["missing_predictions"].value
    summary = json.loads((evaluation / "scores" / "tiny_marked" / "summary.json").read_text())
    assert missing and summary["missing_predictions"] == missing and all(count > 0 for count in missing.values())

    # A second materialisation resumes: nothing new is generated, the same answers come out.
    answers = evaluation / "predictions" / "tiny_marked" / "predictions.jsonl"
    before = answers.read_bytes()
    again = _materialize(storage_root, instance, "tiny_marked")
    assert again.asset_materializations_for_node("predictions")[0].metadata["generated"].value == 0
    assert answers.read_bytes() == before


def test_beating_the_base_model_takes_three_of_five_benchmarks():
    base = {"scanqa": {"cider": 0.2}, "sqa3d": {"em": 0.1}, "scanrefer": {"acc@0.25": 0.3}, "scan2cap": {}}
    better = {"scanqa": {"cider": 0.5}, "sqa3d": {"em": 0.2}, "scanrefer": {"acc@0.25": 0.4}}
    assert compare_to_base(better, base) == (True, {"scanqa": 0.3, "sqa3d": 0.1, "scanrefer": 0.1})
    two = {"scanqa": {"cider": 0.5}, "sqa3d": {"em": 0.2}, "scanrefer": {"acc@0.25": 0.3}}
    assert compare_to_base(two, base)[0] is False  # a tie is not a win
    assert compare_to_base(base, base)[0] is False  # no better than the base: fails
    assert compare_to_base({}, base)[0] is False  # nothing to compare is no pass
