"""Benchmark of the per-scene visual prompts (``make bench``): it prints measurements, it never asserts a time.

1. A ScanNet-size synthetic scene (2,000-frame ``.sens`` at 1296x968 colour / 640x480 depth, ~140k-vertex mesh,
   32 frames, mesh point cloud, gt instances): ``prepare_scene`` (all stages) against its I/O floor (goal <= 1.5x),
   with the per-stage breakdown and a cProfile of where the time goes. Each of ``REPEATS`` fresh child processes
   alternates the two on the scene: a first pair of passes, then three more. The first prepare adds what a fresh
   process pays once (first calls into the codecs, OpenCV's font tables) and is printed apart; the later passes
   are what a worker pays per scene once it has done one. The goal is judged on the median over the children of
   each child's best prepare / best floor: the two sides ran in the same seconds of machine time, which makes
   that ratio steadier than the ratio of two separate minima (also printed). Every pass opens the scene anew.
2. Peak memory of one such scene: each child reads its own peak RSS (``VmHWM``, Linux KiB) after its imports and
   after its first scene, before the floor loads anything. RSS is used rather than tracemalloc because OpenCV
   and Open3D allocate outside Python's allocator, where tracemalloc does not see them.
3. Ray: the same per-scene tasks over 16 smaller scenes with 1 and with 2 workers (goal >= 1.8x), largest scenes
   first as the asset submits them, in ``RAY_ROUNDS`` rounds of one run each, a fresh local Ray per run. The goal
   is judged on the median over the rounds of the two runs' ratio: each round's runs follow each other, so a slow
   spell of the shared machine hits both rather than one (the order alternates between rounds). Ray start-up and
   one warm-up task per worker (importing the ops modules) are excluded from the timed part. Each round also runs
   the same scenes in one plain process, then two at once: what two cores of the machine give without Ray in the
   same minutes, the reference that tells Ray's own cost from the machine's.

Generated scenes are cached under ``build/bench/`` (git-ignored), keyed by their parameters and the generator's
sources; the first run generates them (a few minutes on two cores), later runs reuse them.
What the tests assert is correctness only: all artifact checks pass, repeated and parallel runs write
byte-identical files, and the worker count is what was asked for.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import pytest
from _bench_util import (
    SceneSpec,
    cached_scenes,
    run_child,
    run_plain,
    run_ray,
    tree_digest,
    warm_page_cache,
)

# Seed 5 of a "Bedroom / Hotel" is the densest mesh (140,375 vertices) among ~600 seeds scanned; the generator has
# no density knob, and ScanNet's _vh_clean_2 meshes are ~150k vertices.
SCANNET_SIZE = SceneSpec("scene_bench_scannet", seed=5, n_frames=2000, scene_type="Bedroom / Hotel")
FLEET = [SceneSpec(f"scene_bench_{i:02d}", seed=100 + i, n_frames=150) for i in range(16)]
REPEATS = 9  # fresh child processes, each alternating prepare_scene and the floor (single runs vary by +-15%)
FLOOR_GOAL = 1.5
SPEEDUP_GOAL = 1.8
RAY_ROUNDS = 5  # rounds of Ray and plain-process runs (1 and 2 each); single Ray pairs spanned 1.55-2.37x in a day

ROWS: list[tuple[str, str, str]] = []  # (measurement, value, goal) for the closing table


@pytest.fixture(scope="module", autouse=True)
def summary_table():
    load = os.getloadavg()
    print(f"\n[bench] {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start")
    yield
    width = max(len(row[0]) for row in ROWS) if ROWS else 10
    lines = [f"{'measurement':<{width}}  {'value':>14}  goal", "-" * (width + 26)]
    lines += [f"{name:<{width}}  {value:>14}  {goal}" for name, value, goal in ROWS]
    print("\n\n=== visual prompts benchmark ===\n" + "\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def scannet_runs(tmp_path_factory) -> dict:
    """``REPEATS`` fresh child processes, each alternating prepare_scene and the I/O floor on the ScanNet-size scene."""
    raw = cached_scenes("scannet-size", [SCANNET_SIZE]) / SCANNET_SIZE.scene_id
    root = tmp_path_factory.mktemp("scannet")
    warm_page_cache(raw)
    runs = [run_child("pair", root / f"run{n}", raw) for n in range(REPEATS)]
    return {"raw": raw, "root": root, "runs": runs}


def test_scannet_size_scene_against_io_floor(scannet_runs):
    runs = scannet_runs["runs"]
    best = min(runs, key=lambda r: r["seconds"])
    floor = min((r["floor"] for r in runs), key=lambda f: f["seconds"])
    ratio = statistics.median(r["seconds"] / r["floor"]["seconds"] for r in runs)
    first = statistics.median(r["first_seconds"] / r["floor"]["seconds"] for r in runs)

    print(
        f"\n[bench] ScanNet-size scene: {floor['num_vertices']:,} mesh vertices, {SCANNET_SIZE.n_frames} frames "
        f"{SCANNET_SIZE.color_size[0]}x{SCANNET_SIZE.color_size[1]} / "
        f"{SCANNET_SIZE.depth_size[0]}x{SCANNET_SIZE.depth_size[1]}, {best['num_frames']} sampled, "
        f"{best['num_objects']} objects"
    )
    print(
        "[bench] per child, best prepare_scene / best floor (s): "
        + ", ".join(f"{r['seconds']:.2f}/{r['floor']['seconds']:.2f}" for r in runs)
    )
    prepare_passes = [t for r in runs for t in r["prepare_passes"]]
    floor_passes = [t for r in runs for t in r["floor_passes"]]
    print(
        f"[bench] all steady passes: prepare_scene {min(prepare_passes):.2f}-{max(prepare_passes):.2f} s, "
        f"floor {min(floor_passes):.2f}-{max(floor_passes):.2f} s; "
        f"ratio of the two minima {best['seconds'] / floor['seconds']:.2f}x"
    )
    print(
        f"[bench] first scene of a fresh process: prepare_scene {min(r['first_seconds'] for r in runs):.2f} s at "
        f"best, median {first:.2f}x its child's best floor"
    )
    print(
        "[bench] I/O floor parts (s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in floor["parts"].items())
        + f" ({floor['num_jpegs']} JPEG {floor['jpeg_size'][0]}x{floor['jpeg_size'][1]}, "
        f"1 PNG {floor['png_size'][0]}x{floor['png_size'][1]}, 4 .npy, 3 JSON, 2 preview JPEG)"
    )
    print("[bench] prepare_scene stages (s): " + ", ".join(f"{k} {v:.2f}" for k, v in best["stage_seconds"].items()))
    ROWS.append(("scannet-size scene: prepare_scene, best (s)", f"{best['seconds']:.2f}", ""))
    ROWS.append(("scannet-size scene: I/O floor, best (s)", f"{floor['seconds']:.2f}", ""))
    ROWS.append(("scannet-size scene: prepare / floor (median)", f"{ratio:.2f}x", f"<= {FLOOR_GOAL}x"))
    ROWS.append(("  first scene of a fresh process (median)", f"{first:.2f}x", ""))
    for stage, seconds in best["stage_seconds"].items():
        ROWS.append((f"  stage {stage} (s)", f"{seconds:.2f}", ""))

    for run in runs:
        assert run["num_frames"] == 32 and run["num_points"] == floor["num_vertices"]
        assert all(run["checks_passed"].values()), run["checks_passed"]
    digests = [tree_digest(Path(out)) for out in (runs[0]["outputs"][0], runs[-1]["outputs"][-1])]
    assert digests[0] == digests[1], "repeated runs differ"


def test_peak_memory_per_scene(scannet_runs):
    run = max(scannet_runs["runs"], key=lambda r: r["peak_rss_mib"])
    print(
        f"\n[bench] peak RSS (fresh process, VmHWM, after its first scene): prepare_scene "
        f"{run['peak_rss_mib']:.0f} MiB (after imports {run['baseline_rss_mib']:.0f} MiB)"
    )
    ROWS.append(("scannet-size scene: peak RSS (MiB)", f"{run['peak_rss_mib']:.0f}", ""))
    ROWS.append(("  of which scene work (MiB)", f"{run['peak_rss_mib'] - run['baseline_rss_mib']:.0f}", ""))
    assert run["peak_rss_mib"] >= run["baseline_rss_mib"] > 0


def test_where_the_time_goes(scannet_runs):
    profile = run_child("profile", scannet_runs["root"] / "profile" / SCANNET_SIZE.scene_id, scannet_runs["raw"])
    print(f"\n[bench] cProfile of prepare_scene ({profile['total']:.2f} s with profiling overhead)")
    for title, key in (("own time", "by_own_time"), ("cumulative time", "by_cumulative")):
        print(f"[bench] top functions by {title}:  calls  own s  cum s")
        for name, calls, own, cumulative in profile[key][:15]:
            print(f"    {name[:70]:<70} {calls:>7} {own:>6.2f} {cumulative:>6.2f}")
    assert profile["by_cumulative"][0][3] > 0


def test_ray_two_workers_against_one(tmp_path):
    scans = cached_scenes("ray-fleet", FLEET)
    scene_dirs = [scans / spec.scene_id for spec in FLEET]
    warm_page_cache(scans)
    runners = {
        "ray": lambda out, n: run_ray(scene_dirs, out, num_cpus=n),
        "plain": lambda out, n: run_plain(scene_dirs, out, processes=n),
    }
    order = [("ray", 1), ("ray", 2), ("plain", 1), ("plain", 2)]
    rounds = []
    for n in range(RAY_ROUNDS):
        runs = {
            key: runners[key[0]](tmp_path / f"round{n}" / f"{key[0]}{key[1]}", key[1])
            for key in (order if n % 2 == 0 else order[::-1])
        }
        rounds.append(runs)
    speedups = {kind: [r[(kind, 1)]["seconds"] / r[(kind, 2)]["seconds"] for r in rounds] for kind in runners}
    speedup, reference = (statistics.median(speedups[kind]) for kind in ("ray", "plain"))
    print(
        f"\n[bench] Ray over {len(scene_dirs)} scenes ({FLEET[0].n_frames} frames each, ScanNet sizes), "
        f"{RAY_ROUNDS} rounds; timed from first submit to last result, Ray start-up and worker warm-up excluded; "
        "each round also runs the scenes in plain processes (1, then 2 at once on alternate scenes)"
    )
    for n, runs in enumerate(rounds):
        one, two = runs[("ray", 1)], runs[("ray", 2)]
        serial, parallel = sum(one["task_seconds"].values()), sum(two["task_seconds"].values())
        print(
            f"[bench] round {n}: Ray 1 worker {one['seconds']:.2f} s (per-scene stage times sum to {serial:.2f} s), "
            f"2 workers {two['seconds']:.2f} s (sum {parallel:.2f} s, a perfect split {parallel / 2:.2f} s): "
            f"{speedups['ray'][n]:.2f}x; start-up {one['startup_seconds']:.1f} / {two['startup_seconds']:.1f} s; "
            f"plain processes {runs[('plain', 1)]['seconds']:.2f} / {runs[('plain', 2)]['seconds']:.2f} s: "
            f"{speedups['plain'][n]:.2f}x"
        )
    print(
        f"[bench] speed-up, median of {RAY_ROUNDS} rounds: Ray {speedup:.2f}x, plain processes {reference:.2f}x, "
        f"on {os.cpu_count()} CPUs shared with the rest of the machine (1-min load average after the last Ray "
        f"run {rounds[-1][('ray', 2)]['load']:.2f})"
    )
    for k, workers in enumerate(("1 worker", "2 workers")):
        best = min(runs[("ray", k + 1)]["seconds"] for runs in rounds)
        ROWS.append((f"Ray {len(scene_dirs)} scenes, {workers}, best (s)", f"{best:.2f}", ""))
    ROWS.append(("Ray speed-up 2 workers / 1 (median)", f"{speedup:.2f}x", f">= {SPEEDUP_GOAL}x"))
    ROWS.append(("no Ray: 2 processes / 1, same rounds (median)", f"{reference:.2f}x", ""))

    for runs in rounds:
        assert (runs[("ray", 1)]["workers"], runs[("ray", 2)]["workers"]) == (1, 2)
    for scene_dir in scene_dirs:
        digests = {str(tree_digest(run_dir / scene_dir.name)) for run_dir in (tmp_path / "round0").iterdir()}
        assert len(digests) == 1, f"{scene_dir.name}: Ray (1 and 2 workers) and plain processes wrote different files"
