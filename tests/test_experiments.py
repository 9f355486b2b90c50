"""Experiments (recipes/experiments/), checkpoint versions and pruning, the leaderboard table and lineage lookups:
the pure parts, without training (the Dagster runs are in test_training_pipeline.py)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import dagster as dg
import pytest

from ops.core.layout import StorageLayout
from ops.metrics.report import HEADLINE, PUBLISHED_ROWS
from ops.model.experiments import load_experiment, load_experiments
from ops.model.leaderboard import COLUMNS, build_leaderboard
from ops.model.lineage import checkpoint_chain, checkpoints_with_scene
from ops.model.training.recipe import load_recipe
from ops.model.training.versions import latest_version, list_versions, next_version, prune_versions, record_version
from resources.training import PROJECT_DIR

EXPERIMENTS = PROJECT_DIR / "recipes" / "experiments"


def test_the_project_experiments_load_and_cover_the_base_model_and_the_variants():
    experiments = load_experiments(EXPERIMENTS)
    assert {"base", "tiny_marked", "tiny_unmarked", "tiny_no_bev"} <= set(experiments)
    assert not experiments["base"].trains and experiments["base"].summary()["finetuning_type"] == "none"
    assert {e.data_variant for e in experiments.values() if e.trains} == {"marked", "no_bev", "unmarked"}
    marked = experiments["tiny_marked"]
    assert marked.recipe.deepspeed_config["zero_optimization"]["stage"] == 2
    # The trainer reads the same file as a plain recipe: the experiment keys are ignored, the hash is the same.
    assert load_recipe(marked.path).hash == marked.recipe.hash
    assert len({e.hash for e in experiments.values()}) == len(experiments)


def test_experiment_files_are_validated(tmp_path):
    (tmp_path / "Bad Name.yaml").write_text("data_variant: marked\n")
    with pytest.raises(ValueError, match="file name"):
        load_experiment(tmp_path / "Bad Name.yaml")
    (tmp_path / "x.yaml").write_text("data_variant: colour\n")
    with pytest.raises(ValueError, match="data_variant"):
        load_experiment(tmp_path / "x.yaml")
    (tmp_path / "y.yaml").write_text("num_frames: 0\n")
    with pytest.raises(ValueError, match="num_frames"):
        load_experiment(tmp_path / "y.yaml")
    (tmp_path / "z.yaml").write_text("learning_rat: 1.0\n")
    with pytest.raises(ValueError, match="unknown recipe keys"):
        load_experiment(tmp_path / "z.yaml")


def test_versions_increase_monotonically_and_pruning_keeps_the_last_n(tmp_path):
    folder = tmp_path / "exp"
    assert next_version(folder) == "v0001" and latest_version(folder) is None
    for _ in range(4):
        version = next_version(folder)
        (folder / version).mkdir(parents=True)
        (folder / version / "lineage.json").write_text("{}")
        record_version(folder, version)
    (folder / "v0005").mkdir()  # no lineage.json: an incomplete version is not listed
    assert list_versions(folder) == ["v0001", "v0002", "v0003", "v0004"]
    assert prune_versions(folder, 2) == ["v0001", "v0002"]
    assert list_versions(folder) == ["v0003", "v0004"]
    (folder / "v0005").rmdir()
    for name in ("v0003", "v0004"):
        (folder / name / "lineage.json").unlink()
        (folder / name).rmdir()
    assert next_version(folder) == "v0005"  # a pruned name never comes back
    with pytest.raises(ValueError):
        prune_versions(folder, 0)


def _lineage(experiment: str, version: str, scenes: list[str]) -> dict:
    return {
        "experiment": {"name": experiment, "hash": "e" * 64},
        "version": version,
        "checkpoint": "trained",
        "created": "2026-01-01T00:00:00+00:00",
        "shards": {"path": "/s", "data_version": "d" * 64, "num_rows": 3},
        "train_scenes": scenes,
        "scenes": {s: {"raw_scan": {"data_version": "r" * 64, "code_version": None}} for s in scenes},
        "base_model": {"path": "/base", "fingerprint": "b" * 64},
        "recipe": {"path": "/r.yaml", "hash": "h" * 64},
        "code_commit": "c" * 40,
    }


def test_scene_lineage_finds_current_past_and_pruned_versions():
    records = [
        _lineage("a", "v0001", ["s1", "s2"]),
        _lineage("a", "v0002", ["s2"]),
        _lineage("a", "v0001", ["s1", "s2"]),  # the same version from disk and from the instance
        _lineage("b", "v0003", ["s1"]),
    ]
    on_disk = {("a", "v0001"): Path("/a/v0001"), ("a", "v0002"): Path("/a/v0002")}
    found = checkpoints_with_scene(records, "s1", {"a": "v0002"}, on_disk)
    assert [(r.experiment, r.version, r.status) for r in found] == [("a", "v0001", "past"), ("b", "v0003", "pruned")]
    assert [(r.version, r.status) for r in checkpoints_with_scene(records, "s2", {"a": "v0002"}, on_disk)] == [
        ("v0001", "past"),
        ("v0002", "current"),
    ]
    chain = dict(checkpoint_chain(records[0]))
    assert chain["checkpoint"] == "a v0001 (trained)" and chain["shards data version"] == "d" * 64
    assert chain["  s1 raw_scan"] == "r" * 64 and chain["code commit"] == "c" * 40


def test_leaderboard_holds_every_scored_experiment_with_lineage_and_the_published_rows(tmp_path):
    layout = StorageLayout(tmp_path)
    experiments = load_experiments(EXPERIMENTS)
    scores = {"scanqa": {"cider": 0.5}, "sqa3d": {"em": 0.25}, "scanrefer": {"acc@0.25": 0.1}}
    for name in ("tiny_marked", "base"):
        run = {
            "variant": "marked",
            "rows": 3,
            "generated": 3,
            "seconds": 1.0,
            "samples_per_second": 3.0,
            "predictions": "p.jsonl",
            "sha256": "0" * 64,
            "model": "m",
            "eval_set": "e",
            "adapter": None,
            "experiment": name,
            "checkpoint": "v0002",
        }
        layout.evaluation.scores_summary(name).parent.mkdir(parents=True)
        layout.evaluation.scores_summary(name).write_text(json.dumps({**run, "scores": scores}))
    folder = layout.models.checkpoint("tiny_marked", "v0002")
    folder.mkdir(parents=True)
    (folder / "lineage.json").write_text(json.dumps(_lineage("tiny_marked", "v0002", ["s1", "s2"])))
    board = build_leaderboard(layout, [e.summary() for e in experiments.values()])
    ours = [row for row in board.rows if row.kind == "ours"]
    assert [row.experiment for row in ours] == ["base", "tiny_marked"]  # experiments without scores are left out
    assert ours[0].version == "v0002 (pruned)" and ours[0].train_scenes is None
    marked = ours[1]
    assert (marked.train_scenes, marked.recipe_hash, marked.headline["scanqa"]) == (2, "h" * 64, 50.0)
    assert len(board.rows) == len(ours) + len(PUBLISHED_ROWS)
    markdown = layout.evaluation.leaderboard("md").read_text()
    assert markdown.startswith("| " + " | ".join(COLUMNS) + " |")
    assert "| tiny_marked | v0002 | marked | 8 | lora | 50.0 | 25.0 | 10.0 | – | – | dddddddddddd | 2 |" in markdown
    assert "GPT4Scene-HDM (REFERENCE §2.12 (paper))" in markdown and "| 96.3 | 60.6 | 62.6 | 64.5 | 86.3 |" in markdown
    rows = list(csv.reader(io.StringIO(layout.evaluation.leaderboard("csv").read_text())))
    assert rows[0] == ["kind", *COLUMNS] and len(rows) == len(board.rows) + 1
    saved = json.loads(layout.evaluation.leaderboard("json").read_text())
    assert saved["headline"] == HEADLINE and saved["rows"][1]["recipe_hash"] == "h" * 64


def test_definitions_partition_training_and_evaluation_by_experiment():
    from pipelines.cli import build_parser, cmd_lineage
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    experiments = load_experiments(EXPERIMENTS)
    for asset in ("predictions", "eval_scores"):
        assert graph.get(dg.AssetKey(asset)).partitions_def.get_partition_keys() == sorted(experiments)
    # A zero-shot experiment (an endpoint) trains nothing: it has no checkpoint partition.
    trained_or_base = sorted(name for name, e in experiments.items() if e.kind != "zero_shot")
    assert trained_or_base != sorted(experiments)
    assert graph.get(dg.AssetKey("checkpoint")).partitions_def.get_partition_keys() == trained_or_base
    assert graph.get(dg.AssetKey("checkpoint")).pools == {"gpu_train"}
    assert graph.get(dg.AssetKey("leaderboard")).partitions_def is None
    assert dg.AssetKey("eval_scores") in graph.get(dg.AssetKey("leaderboard")).parent_keys
    args = build_parser().parse_args(["lineage", "scene", "scene0000_00", "--json"])
    assert (args.func, args.kind, args.name, args.json) == (cmd_lineage, "scene", "scene0000_00", True)


def test_an_edited_recipe_makes_only_its_experiments_checkpoint_stale(tmp_path, tiny_model_dir):
    """Observing `experiment_recipe` records each experiment's hash; after one file changes, Dagster marks that
    experiment's checkpoint stale (cause: experiment_recipe) and leaves the other fresh. Base experiments: no
    training needed."""
    from dagster._core.definitions.data_version import StaleStatus
    from dagster._utils.test.data_versions import get_stale_status_resolver

    from assets.experiments import build_recipe_asset
    from assets.training import base_model, build_checkpoint_asset
    from resources.storage import StorageRoot
    from resources.training import BaseModelSource, TrainingLauncher

    folder = tmp_path / "experiments"
    folder.mkdir()
    for name in ("base", "base_copy"):
        (folder / f"{name}.yaml").write_text((EXPERIMENTS / "base.yaml").read_text())
    experiments = load_experiments(folder)
    recipe, checkpoint = build_recipe_asset(experiments), build_checkpoint_asset(experiments)
    graph = [recipe, base_model, checkpoint]
    instance = dg.DagsterInstance.ephemeral()
    resources = {
        "storage": StorageRoot(root=str(tmp_path / "root")),
        "base_model_source": BaseModelSource(model_dir=str(tiny_model_dir)),
        "training_launcher": TrainingLauncher(),  # never launched: base experiments do not train
    }
    assert dg.materialize([base_model], instance=instance, resources=resources).success
    observe = dg.Definitions(
        assets=[recipe], jobs=[dg.define_asset_job("observe", selection=[recipe.key])]
    ).resolve_job_def("observe")
    assert observe.execute_in_process(instance=instance).success
    for name in experiments:
        run = dg.materialize(graph, selection=[checkpoint], partition_key=name, instance=instance, resources=resources)
        assert run.success
    resolver = get_stale_status_resolver(instance, graph)
    assert {resolver.get_status(checkpoint.key, name) for name in experiments} == {StaleStatus.FRESH}

    edited = folder / "base_copy.yaml"
    edited.write_text(edited.read_text().replace("num_frames: 8", "num_frames: 32"))
    assert observe.execute_in_process(instance=instance).success
    resolver = get_stale_status_resolver(instance, graph)
    assert resolver.get_status(checkpoint.key, "base_copy") == StaleStatus.STALE
    causes = resolver.get_stale_causes(checkpoint.key, "base_copy")
    assert any(c.dependency and c.dependency.asset_key == dg.AssetKey("experiment_recipe") for c in causes), causes
    assert resolver.get_status(checkpoint.key, "base") == StaleStatus.FRESH
