"""Benchmark of the training loader (``make bench``): it prints measurements, it never asserts a time.

Two synthetic scenes at ScanNet size (150 frames of 1296x968 colour) are prepared with GPT4Scene's training
settings (32 marked frames at 512 px + a 1024 px BEV: 33 images a sample) and built into the ``marked`` train set,
as Parquet shards with the images embedded (bytes mode) and as the ShareGPT JSON export whose images are loose
JPEG/PNG files read by path, as LLaMA-Factory reads them. Side by side, in one run, on the same rows in the same
order, samples/s of:

- *shards*: rows read from the Parquet files one row group at a time (``ops.dataset.shards.iter_rows``);
- *shards via datasets*: the same files through ``datasets.load_dataset("parquet")`` (what LLaMA-Factory does
  with a Parquet dataset; the one-time conversion to its Arrow cache is timed apart);
- *loose files*: the ShareGPT JSON rows, each image opened by its path under the storage root;

each decoded to model-ready tensors as training does (``ops.model.vlm.load_image``: PIL decode, RGB, long side capped
at 512 px; then ``Qwen2VLImageProcessorPil`` with Qwen2-VL's default pixel limits → ``pixel_values`` and
``image_grid_thw``), and each also read only (bytes in memory, no decode) to show the I/O part alone.
Each measurement is the best of ``REPEATS``, the routes taking turns in a rotating order; wall time and this
process's CPU time are both shown (CPU time is less disturbed by other work on the machine). The files were just
read, so they come from the page cache. The generated scenes are cached under ``build/bench/`` (keyed by the
generator's sources); the first run generates them (about two minutes on two cores).
What the test asserts is correctness only: all three routes give identical tensors for the same rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from _bench_util import BENCH_DIR, GENERATOR_SOURCES, warm_page_cache

from ops.core.atomic import write_json
from ops.core.layout import DatasetLayout
from ops.dataset.build import SampleSettings, ShardSettings, build_dataset
from ops.dataset.shards import iter_rows, shard_files
from ops.model.vlm import load_image, preprocess_images
from ops.prompts.driver import PromptSettings, prepare_scene
from ops.synthetic import generate_dataset

N_ROWS = 32  # rows timed per route (33 images each): one Parquet row group
REPEATS = 2
MAX_SIDE = 512  # GPT4Scene's training cap on the long side
DATASET = {"n_scenes": 2, "seed": 11, "n_frames": 150}  # ScanNet-size colour (1296x968) and depth (640x480)


def _cached_raw() -> Path:
    """``raw/`` (scans + annotations) of ``DATASET``, generated once under ``build/bench/loader-<key>/``."""
    digest = hashlib.sha256(json.dumps(DATASET, sort_keys=True).encode())
    for source in GENERATOR_SOURCES:
        digest.update(source.read_bytes())
    folder = BENCH_DIR / f"loader-{digest.hexdigest()[:12]}"
    if not (folder / "complete.json").is_file():
        for stale in BENCH_DIR.glob("loader-*"):
            shutil.rmtree(stale)
        print(f"\n[bench] generating {DATASET} into {folder} ...", flush=True)
        generate_dataset(folder / "raw", **DATASET)
        write_json(folder / "complete.json", DATASET)
    return folder / "raw"


@pytest.fixture(scope="module")
def train_set(tmp_path_factory):
    """Storage root with two prepared ScanNet-size scenes and its ``marked`` train shards + ShareGPT export."""
    base = tmp_path_factory.mktemp("loader_bench")
    raw = _cached_raw()
    started = time.perf_counter()
    root = base / "root"
    for scene in sorted(p.name for p in (raw / "scans").iterdir()):
        prepare_scene(raw / "scans" / scene, root / "scenes" / scene, PromptSettings())
    prepared = time.perf_counter() - started
    dataset_dir = base / "dataset"
    build_dataset(
        root,
        raw / "scans",
        raw / "annotations",
        dataset_dir,
        SampleSettings(),
        ShardSettings(target_shard_bytes=64 * 2**20, sharegpt_export=True),
    )
    warm_page_cache(base)
    exported = json.loads(DatasetLayout(dataset_dir).sharegpt("marked").read_text())
    image_bytes = sum((root / path).stat().st_size for row in exported for path in row["images"])
    shards = DatasetLayout(dataset_dir).train_shards("marked")
    size = sum(Path(p).stat().st_size for p in shard_files(shards))
    # Rows of one scene repeat its 33 images; within a row group Parquet's dictionary/zstd store them once, which
    # real data (rows of many scenes per row group) does not allow: the read-only numbers are best cases.
    print(
        f"\n[bench] prepared 2 scenes in {prepared:.0f} s; train shards {size / 2**20:.1f} MiB in "
        f"{len(shard_files(shards))} files for {image_bytes / 2**20:.0f} MiB of per-row image bytes"
    )
    return root, shards, DatasetLayout(dataset_dir).sharegpt("marked"), base


def _image_processor():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil()  # Qwen2-VL's defaults: patch 14, merge 2, 56*56 .. 28*28*1280 pixels


def _take(rows, n):
    for index, row in enumerate(rows):
        if index == n:
            return
        yield row


def test_loader_throughput_shards_against_loose_files(train_set, tmp_path, monkeypatch):
    root, shards, sharegpt, _ = train_set
    processor = _image_processor()
    loose_rows = json.loads(sharegpt.read_text())[:N_ROWS]
    n = len(loose_rows)
    assert n == N_ROWS, f"only {n} train rows"

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    started = time.perf_counter()
    hf_rows = datasets.load_dataset(
        "parquet", data_files=shard_files(shards), split="train", cache_dir=str(tmp_path / "hf" / "cache")
    )
    hf_prepare = time.perf_counter() - started

    def shard_images():
        for row in _take(iter_rows(shards, columns=("messages", "images")), n):
            yield row["images"]

    def hf_images():
        for index in range(n):
            yield hf_rows[index]["images"]

    def loose_images():
        for row in loose_rows:
            yield [root / path for path in row["images"]]

    routes = {"shards": shard_images, "shards via datasets": hf_images, "loose files": loose_images}

    def decoded(images_of):
        return [preprocess_images(processor, [load_image(i, MAX_SIDE) for i in images]) for images in images_of()]

    def read_only(images_of):
        return sum(
            len(image) if isinstance(image, bytes) else len(image.read_bytes())
            for images in images_of()
            for image in images
        )

    # Correctness first (and warm-up): the three routes give the same tensors for the same rows.
    reference = None
    for route, images_of in routes.items():
        tensors = [
            preprocess_images(processor, [load_image(i, MAX_SIDE) for i in images]) for images in _take(images_of(), 3)
        ]
        if reference is None:
            reference = tensors
        for got, want in zip(tensors, reference, strict=True):
            assert torch.equal(got["pixel_values"], want["pixel_values"]), route
            assert torch.equal(got["image_grid_thw"], want["image_grid_thw"]), route
    assert reference[0]["image_grid_thw"].shape[0] == 33
    patches_per_sample = reference[0]["pixel_values"].shape[0]

    names = list(routes)
    best = {
        (route, mode, clock): float("inf")
        for route in names
        for mode in ("decoded", "read")
        for clock in ("wall", "cpu")
    }
    for repeat in range(REPEATS):
        for route in names[repeat % len(names) :] + names[: repeat % len(names)]:  # rotate who goes first
            for mode, run in (("decoded", decoded), ("read", read_only)):
                wall, cpu = time.perf_counter(), time.process_time()
                run(routes[route])
                best[(route, mode, "wall")] = min(best[(route, mode, "wall")], time.perf_counter() - wall)
                best[(route, mode, "cpu")] = min(best[(route, mode, "cpu")], time.process_time() - cpu)

    load = os.getloadavg()
    rows = []
    for mode, label in (("decoded", "decoded to tensors"), ("read", "read only, no decode")):
        for route in names:
            wall, cpu = best[(route, mode, "wall")], best[(route, mode, "cpu")]
            rows.append((f"{route}: {label}", f"{n / wall:.1f}", f"{33 * n / wall:.0f}", f"{n / cpu:.1f}"))

    def ratio(route: str, mode: str, clock: str) -> str:
        return f"{best[('loose files', mode, clock)] / best[(route, mode, clock)]:.2f}x"

    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{'route':<{width}}{'samples/s':>10}  {'images/s':>9}  {'samples/CPU-s':>13}", "-" * (width + 37)]
    lines += [f"{name:<{width}}{a:>10}  {b:>9}  {c:>13}" for name, a, b, c in rows]
    lines += [
        "",
        "throughput ratio to loose files          wall     CPU",
        f"  shards, decoded                       {ratio('shards', 'decoded', 'wall'):>6}  "
        f"{ratio('shards', 'decoded', 'cpu'):>6}",
        f"  shards via datasets, decoded          {ratio('shards via datasets', 'decoded', 'wall'):>6}  "
        f"{ratio('shards via datasets', 'decoded', 'cpu'):>6}",
        f"  shards, read only                     {ratio('shards', 'read', 'wall'):>6}  "
        f"{ratio('shards', 'read', 'cpu'):>6}",
        f"datasets.load_dataset one-time Arrow conversion: {hf_prepare:.1f} s",
        f"rows {n}, 33 images each (1 BEV + 32 frames), {patches_per_sample} patches of "
        f"{reference[0]['pixel_values'].shape[1]} values per sample; {os.cpu_count()} CPUs, load {load[0]:.2f}",
    ]
    print(
        f"\n\n=== training loader: rows -> Qwen2-VL model-ready tensors (best of {REPEATS}; page cache warm) ===\n"
        + "\n".join(lines)
        + "\n"
    )
