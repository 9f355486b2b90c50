"""Training without launching: recipes, the Parquet row stream, LoRA targets, launcher commands and job specs."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import dagster as dg
import pytest
import torch

from assets.dataset import task_samples, training_shards
from ops.model.training.data import ShardDataset, row_encoder, training_collator
from ops.model.training.recipe import load_recipe
from ops.model.training.trainer import answer_token_loss, lora_target_pattern, prepare_model
from ops.model.vlm import IGNORE_INDEX, load_vlm
from resources.training import TrainingLauncher, TrainingRun

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def test_paper_recipe_matches_gpt4scene_release():
    loaded = load_recipe(RECIPES / "qwen2vl_7b_full_sft.yaml")
    r = loaded.recipe
    assert (r.finetuning_type, r.learning_rate, r.lr_scheduler_type, r.warmup_ratio, r.num_train_epochs) == (
        "full",
        5e-6,
        "cosine",
        0.1,
        1.0,
    )
    assert (r.global_batch_size, r.image_resolution, r.bf16, r.freeze_vision_tower) == (64, 512, True, True)
    assert r.gradient_accumulation(8) == 8 and r.gradient_accumulation(2) == 32
    assert loaded.deepspeed_config["zero_optimization"]["stage"] == 3
    assert loaded.deepspeed_config["train_micro_batch_size_per_gpu"] == "auto"
    lora = load_recipe(RECIPES / "qwen2vl_7b_lora_sft.yaml")
    assert lora.recipe.finetuning_type == "lora" and lora.deepspeed_config["zero_optimization"]["stage"] == 2
    offload = json.loads((RECIPES / "deepspeed" / "ds_z3_offload_config.json").read_text())["zero_optimization"]
    assert offload["offload_optimizer"]["device"] == offload["offload_param"]["device"] == "cpu"


def test_recipe_hash_follows_values_not_comments_and_covers_deepspeed(tmp_path):
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    text = "finetuning_type: lora\nlearning_rate: 1.0e-4\nmax_steps: 5\ndeepspeed: ds.json\n"
    (tmp_path / "a.yaml").write_text("### train\n" + text)
    (tmp_path / "b.yaml").write_text("# another comment\n" + "\n".join(reversed(text.splitlines())) + "\n")
    a, b = load_recipe(tmp_path / "a.yaml"), load_recipe(tmp_path / "b.yaml")
    assert a.hash == b.hash
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    assert load_recipe(tmp_path / "a.yaml").hash != a.hash
    (tmp_path / "typo.yaml").write_text(text + "lerning_rate: 1\n")
    with pytest.raises(ValueError, match=r"typo.yaml: unknown recipe keys \['lerning_rate'\]"):
        load_recipe(tmp_path / "typo.yaml")
    (tmp_path / "stage.yaml").write_text(text + "stage: dpo\n")
    with pytest.raises(ValueError, match="stage must be 'sft'"):
        load_recipe(tmp_path / "stage.yaml")


@pytest.fixture(scope="module")
def shards(prepared_scenes, tmp_path_factory):
    """Train shards built by the real dataset assets over the shared prepared scenes."""
    import shutil

    from resources.storage import StorageRoot

    root = tmp_path_factory.mktemp("train_root") / "root"
    shutil.copytree(prepared_scenes.root, root)
    storage = StorageRoot(root=str(root), raw_root=str(prepared_scenes.raw))
    assert dg.materialize([task_samples], resources={"storage": storage}).success
    assert dg.materialize([training_shards], resources={"storage": storage}, partition_key="marked").success
    return storage, storage.dataset.train_shards()


def test_rows_stream_one_row_group_at_a_time_and_learn_only_the_answer(shards, tiny_model_dir):
    storage, shards_dir = shards
    vlm = load_vlm(tiny_model_dir)
    dataset = ShardDataset(shards_dir, row_encoder(vlm, 512, 4096))
    assert len(dataset) == sum(f.rows for f in dataset.manifest.files) > 32
    row = dataset.read_row(33)
    assert dataset._cached[0] == 1 and len(dataset._cached[1]) <= 32  # only row group 1 is held
    features = [dataset[i] for i in (33, 34)]
    answer = row["messages"][1]["content"]
    learnt = features[0]["labels"][features[0]["labels"] != IGNORE_INDEX]
    assert vlm.tokenizer.decode(learnt) == answer + "<|im_end|>\n"
    assert len(features[0]["image_grid_thw"]) == len(row["images"]) == 9
    batch = training_collator(vlm.tokenizer.pad_token_id)(features)
    labels = batch.pop("labels")
    keep = batch["logits_to_keep"]
    assert int(keep.sum()) == int((labels[:, 1:] != IGNORE_INDEX).sum())
    # Projecting only the kept positions gives the same loss as the model's own loss over all logits.
    with torch.inference_mode():
        ours = answer_token_loss(vlm.model(**batch), labels)
        full = vlm.model(**{k: v for k, v in batch.items() if k != "logits_to_keep"}, labels=labels).loss
    assert torch.allclose(ours, full, atol=1e-5)
    short = ShardDataset(shards_dir, row_encoder(vlm, 512, 64), max_samples=3)
    with pytest.raises(ValueError, match=r"scene '.+', file .+\.parquet: sample .+ tokens exceed cutoff_len 64"):
        short[0]
    assert len(short) == 3


def test_lora_targets_the_language_model_only_unless_the_tower_is_unfrozen(tiny_model_dir, tmp_path):
    vlm = load_vlm(tiny_model_dir)
    (tmp_path / "r.yaml").write_text("finetuning_type: lora\nmax_steps: 1\nlora_rank: 4\n")
    recipe = load_recipe(tmp_path / "r.yaml").recipe
    model = prepare_model(vlm.model, recipe)
    wrapped = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if ".lora_A" in n}
    assert wrapped and all("language_model" in n for n in wrapped)
    assert {n.rsplit(".", 1)[-1] for n in wrapped} == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    (tmp_path / "v.yaml").write_text("finetuning_type: lora\nmax_steps: 1\nfreeze_vision_tower: false\n")
    pattern = lora_target_pattern(load_vlm(tiny_model_dir).model, load_recipe(tmp_path / "v.yaml").recipe)
    assert "visual" not in pattern.split("(?!")[1].split(")")[0] and "qkv" in pattern and "merger" in pattern
    (tmp_path / "f.yaml").write_text("finetuning_type: full\nmax_steps: 1\n")
    full = prepare_model(load_vlm(tiny_model_dir).model, load_recipe(tmp_path / "f.yaml").recipe)
    assert all(p.requires_grad != ("visual" in n) for n, p in full.named_parameters())


RUN = TrainingRun(
    Path("/data/recipes/r.yaml"),
    Path("/data/models/base"),
    Path("/data/dataset/shards/train_marked"),
    Path("/data/models/runs/abc"),
    Path("/data"),
)
ENTRY = [
    "--recipe",
    "/data/recipes/r.yaml",
    "--model",
    "/data/models/base",
    "--shards",
    "/data/dataset/shards/train_marked",
    "--run-dir",
    "/data/models/runs/abc",
    "--image-root",
    "/data",
]


def test_launcher_commands_wrap_the_same_entry_point():
    torchrun = TrainingLauncher(nproc_per_node=2, python="py").command(RUN, "py", 2, "127.0.0.1", 29600)
    assert torchrun == [
        "py",
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--node_rank=0",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        "--master_port=29600",
        "-m",
        "resources.training_worker",
        *ENTRY,
    ]
    ds = TrainingLauncher(launcher="deepspeed").command(RUN, "py", 1, "127.0.0.1", 29601)
    assert ds == [
        "py",
        "-m",
        "deepspeed.launcher.runner",
        "--num_gpus=1",
        "--master_addr=127.0.0.1",
        "--master_port=29601",
        "--module",
        "resources.training_worker",
        *ENTRY,
    ]
    with pytest.raises(ValueError, match="launcher must be one of"):
        TrainingLauncher(launcher="mpirun").command(RUN, "py", 1, "127.0.0.1", 1)


def test_ray_job_submission_runs_the_launcher_with_its_gpus():
    params = TrainingLauncher(backend="ray", nproc_per_node=8, ray_address="http://head:8265").ray_job_params(RUN)
    assert shlex.split(params["entrypoint"])[:3] == ["python", "-m", "torch.distributed.run"]
    assert shlex.split(params["entrypoint"])[-len(ENTRY) :] == ENTRY and "--nproc_per_node=8" in params["entrypoint"]
    assert params["entrypoint_num_gpus"] == 8 and params["runtime_env"]["env_vars"]["HF_HUB_OFFLINE"] == "1"
    from dagster_ray import PipesRayJobClient

    assert PipesRayJobClient(address="http://head:8265")._address == "http://head:8265"


def test_k8s_job_spec_requests_the_gpus_and_rendezvouses_at_pod_zero():
    launcher = TrainingLauncher(backend="k8s", nnodes=2, k8s_gpus_per_node=8, k8s_image="registry/gpt4scene:1")
    spec = launcher.render_k8s_job(RUN, "train-abc")
    assert (spec["apiVersion"], spec["kind"], spec["spec"]["completionMode"]) == ("batch/v1", "Job", "Indexed")
    assert spec["spec"]["completions"] == spec["spec"]["parallelism"] == 2
    pod = spec["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry/gpt4scene:1" and pod["subdomain"] == "train-abc"
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 8}
    command = container["command"]
    assert command[:3] == ["python", "-m", "torch.distributed.run"] and command[-len(ENTRY) :] == ENTRY
    assert {
        "--nnodes=2",
        "--nproc_per_node=8",
        "--node_rank=$(JOB_COMPLETION_INDEX)",
        "--master_addr=train-abc-0.train-abc",
    } <= set(command)
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "gpt4scene-data"
    with pytest.raises(ValueError, match="multi-node runs use the torchrun launcher"):
        TrainingLauncher(launcher="deepspeed", nnodes=2).render_k8s_job(RUN, "x")


def test_definitions_run_the_checkpoint_in_the_gpu_pool_one_partition_per_experiment():
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    node = graph.get(dg.AssetKey("checkpoint"))
    assert node.pools == {"gpu_train"}
    assert "tiny_marked" in node.partitions_def.get_partition_keys()
    assert {dg.AssetKey("training_shards"), dg.AssetKey("base_model")} <= set(node.parent_keys)
    job = defs.resolve_job_def("training_job")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {"checkpoint"}


def test_cli_train_command_is_wired():
    from pipelines.cli import build_parser, cmd_train

    args = build_parser().parse_args(["train", "--recipe", "recipes/tiny_cpu_lora.yaml", "--shards", "s"])
    assert (args.func, args.recipe, args.shards, args.model) == (cmd_train, "recipes/tiny_cpu_lora.yaml", "s", None)


class _Quiet:
    """A reporter that keeps nothing (the in-process training below needs one)."""

    def log(self, message):
        pass

    def progress(self, record):
        pass

    def summary(self, summary):
        pass


def test_the_same_recipe_and_data_train_byte_identical_weights(shards, tiny_model_dir, tmp_path):
    from ops.model.training.trainer import TrainRequest, train

    storage, shards_dir = shards
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "finetuning_type: lora\nlora_rank: 4\nmax_steps: 3\nper_device_train_batch_size: 1\n"
        "learning_rate: 1.0e-3\nsave_steps: 100\nlogging_steps: 1\nseed: 7\n"
    )
    torch.manual_seed(1)  # a different global RNG state before each run: the recipe's seed alone must decide
    train(TrainRequest(recipe, tiny_model_dir, shards_dir, tmp_path / "a", Path(storage.root)), _Quiet())
    torch.rand(5)
    train(TrainRequest(recipe, tiny_model_dir, shards_dir, tmp_path / "b", Path(storage.root)), _Quiet())
    weights = [(tmp_path / run / "final" / "adapter_model.safetensors").read_bytes() for run in ("a", "b")]
    assert weights[0] == weights[1]
