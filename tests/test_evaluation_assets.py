"""`predictions` → `eval_scores` materialised in process on a real instance, with the tiny model and a LoRA."""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def storage_root(eval_data, tiny_model_dir, tmp_path_factory):
    """A copy of the eval data's root with `models/base/` (the tiny model) and `models/checkpoint/` (a fresh LoRA
    adapter: B = 0, so it answers exactly as the base model)."""
    from peft import LoraConfig, get_peft_model

    from ops.model.vlm import load_vlm

    root = tmp_path_factory.mktemp("evaluation") / "root"
    for folder in ("scenes", "dataset"):
        shutil.copytree(eval_data.root / folder, root / folder)
    shutil.copytree(tiny_model_dir, root / "models" / "base")
    model = get_peft_model(load_vlm(tiny_model_dir).model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(root / "models" / "checkpoint")
    return root


def _materialize(root, instance, **config):
    run_config = {"ops": {"predictions": {"config": {"max_new_tokens": 4, "limit": LIMIT, **config}}}}
    return dg.materialize(
        [predictions, eval_scores],
        instance=instance,
        run_config=run_config,
        resources={"storage": StorageRoot(root=str(root)), "base_model_source": BaseModelSource()},
    )


@pytest.mark.slow
def test_predictions_and_scores_for_every_run_and_benchmark(storage_root):
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(storage_root, instance)
    assert result.success
    runs = json.loads((storage_root / "evaluation" / "predictions" / "index.json").read_text())["runs"]
    assert sorted(runs) == ["base_marked", "finetuned_marked", "finetuned_no_bev", "finetuned_unmarked"]
    for info in runs.values():
        assert info["rows"] == LIMIT and len(read_prediction_rows(info["predictions"])) == LIMIT
    scores_dir = storage_root / "evaluation" / "scores"
    for run in runs:
        assert sorted(p.stem for p in (scores_dir / run).glob("*.json")) == sorted(
            ["scanqa", "sqa3d", "scanrefer", "multi3drefer", "scan2cap"]
        )
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["all_benchmarks_scored"].passed
    assert checks["finetuned_matches_base"].passed  # the zero-initialised adapter answers as the base model does
    metadata = result.asset_materializations_for_node("eval_scores")[0].metadata
    table = metadata["scores"].value
    assert "| scanqa | cider | 96.3 |" in table and "finetuned_marked" in table and "base_marked" in table
    assert "no_bev" in metadata["ablation"].value and "unmarked" in metadata["ablation"].value
    assert {"scanqa/cider", "sqa3d/em", "scanrefer/acc@0.25", "multi3drefer/f1@0.25", "scan2cap/cider@0.50"} <= set(
        metadata
    )

    # A second materialisation resumes: nothing new is generated, the same files come out.
    def files():
        return {
            run: (storage_root / "evaluation" / "predictions" / run / "predictions.jsonl").read_bytes() for run in runs
        }

    before = files()
    again = _materialize(storage_root, instance)
    runs_again = again.asset_materializations_for_node("predictions")[0].metadata["runs"].value
    assert all(info["generated"] == 0 for info in runs_again.values())
    assert files() == before


def test_finetuned_versus_base_comparison():
    base = {"scanqa": {"cider": 0.2}, "sqa3d": {"em": 0.1}, "scanrefer": {"acc@0.25": 0.3}}
    better = {"scanqa": {"cider": 0.5}, "sqa3d": {"em": 0.1}, "scanrefer": {"acc@0.25": 0.2}}
    assert compare_to_base(better, base) == (True, {"scanqa": 0.3, "sqa3d": 0.0, "scanrefer": -0.1})
    worse = {"scanqa": {"cider": 0.1}, "sqa3d": {"em": 0.1}, "scanrefer": {"acc@0.25": 0.3}}
    assert compare_to_base(worse, base)[0] is False
    assert compare_to_base({}, base)[0] is False  # nothing to compare is no pass
