"""Helpers of the visual-prompts benchmark: cached synthetic scenes, the I/O floor, per-scene runs in a fresh
process (time and peak memory), a cProfile of one scene, the Ray fan-out with 1 or N workers and the same
scenes in N plain processes.

Run as a script it is the child process of a measurement and prints one JSON line:
``python _bench_util.py pair|profile OUT_DIR RAW_SCENE_DIR``, ``... sequence OUT_ROOT RAW_SCENE_DIR...``.
"""

from __future__ import annotations

import cProfile
import hashlib
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / "build" / "bench"  # git-ignored (/build/)
# Files whose content decides what a generated scene looks like: a change to any of them regenerates the cache.
GENERATOR_SOURCES = sorted((REPO / "ops" / "synthetic").glob("*.py")) + [
    REPO / "ops" / "scannet" / "sens.py",
    REPO / "ops" / "scannet" / "writers.py",
]
RESULT_PREFIX = "BENCH_RESULT "
STEADY_PASSES = 3  # prepare/floor pairs after the first pair in one child process; the best of each side counts

if str(REPO) not in sys.path:  # the child process runs this file as a script
    sys.path.insert(0, str(REPO))


@dataclass(frozen=True)
class SceneSpec:
    """Arguments of ``ops.synthetic.generate_scene`` for one cached scene."""

    scene_id: str
    seed: int
    n_frames: int
    scene_type: str | None = None
    color_size: tuple[int, int] = (1296, 968)
    depth_size: tuple[int, int] = (640, 480)


def cached_scenes(name: str, specs: list[SceneSpec]) -> Path:
    """``scans/`` folder holding ``specs``, generated once under ``build/bench/<name>-<key>/`` and reused.

    The key hashes the specs and the generator's sources; older caches of the same ``name`` are removed.
    """
    digest = hashlib.sha256(json.dumps([asdict(s) for s in specs], sort_keys=True).encode())
    for source in GENERATOR_SOURCES:
        digest.update(source.read_bytes())
    folder = BENCH_DIR / f"{name}-{digest.hexdigest()[:12]}"
    done = folder / "complete.json"
    if done.is_file():
        return folder / "scans"
    for stale in BENCH_DIR.glob(f"{name}-*"):
        shutil.rmtree(stale)
    from ops.core.atomic import write_json
    from ops.synthetic import generate_scene

    started = time.perf_counter()
    for spec in specs:
        print(f"[bench] generating {spec.scene_id} ({spec.n_frames} frames) into {folder} ...", flush=True)
        generate_scene(
            folder / "scans",
            spec.scene_id,
            spec.seed,
            n_frames=spec.n_frames,
            color_size=spec.color_size,
            depth_size=spec.depth_size,
            scene_type=spec.scene_type,
        )
    write_json(done, {"specs": [asdict(s) for s in specs], "seconds": round(time.perf_counter() - started, 1)})
    return folder / "scans"


# -- one scene in a fresh process -------------------------------------------------------------------------------


def start_child(mode: str, out_dir: Path, *paths: Path) -> subprocess.Popen:
    """Start ``mode`` in a fresh Python process with single-threaded BLAS/OpenMP, as a Ray worker has it."""
    from resources.ray import WORKER_ENV

    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, **WORKER_ENV, "PYTHONPATH": pythonpath}
    args = [sys.executable, __file__, mode, str(out_dir), *map(str, paths)]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def collect_child(child: subprocess.Popen) -> dict[str, Any]:
    """Wait for a child started by ``start_child`` and return its JSON result."""
    stdout, stderr = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"benchmark child {child.args[2:]} failed:\n{stdout}\n{stderr}")
    line = next(line for line in reversed(stdout.splitlines()) if line.startswith(RESULT_PREFIX))
    return json.loads(line[len(RESULT_PREFIX) :])


def run_child(mode: str, out_dir: Path, *paths: Path) -> dict[str, Any]:
    """Run ``mode`` in a fresh Python process and return its JSON result."""
    return collect_child(start_child(mode, out_dir, *paths))


def _maxrss_mib() -> float:
    """Peak resident set size of this process so far: ``VmHWM`` of /proc/self/status (KiB).

    Not ``getrusage().ru_maxrss``: Linux carries that across fork and exec, so a child started from a large
    pytest process reports the parent's peak; ``VmHWM`` belongs to the address space that exec made new."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _child_pair(raw: Path, out: Path) -> dict[str, Any]:
    """``prepare_scene`` and its I/O floor (``_floor_once``) on one scene, alternated in this process.

    Order: prepare, floor (the first passes), then ``STEADY_PASSES`` times prepare, floor. The first prepare pays
    what a fresh process pays once (first calls into the codecs, OpenCV's font tables), the first floor pass
    warms the floor's own path; the others are what a worker pays per scene once it has done one. Alternating
    puts both sides in the same stretch of machine time, so their ratio is steadier than either time. Peak RSS
    is read after the first prepare, before the floor loads anything. Every pass opens the scene anew and writes
    its own folder under ``out``.
    """
    from ops.prompts.driver import prepare_scene

    baseline = _maxrss_mib()
    reference = out / "prepare_first" / raw.name
    start = time.perf_counter()
    first_result = prepare_scene(raw, reference)
    first = time.perf_counter() - start
    peak = _maxrss_mib()
    floor_inputs = _floor_inputs(reference, first_result.previews)
    _floor_once(raw, out / "floor_first", floor_inputs)
    prepares, floors = [], []
    for k in range(STEADY_PASSES):
        start = time.perf_counter()
        result = prepare_scene(raw, out / f"prepare{k}" / raw.name)
        prepares.append((time.perf_counter() - start, result))
        floors.append(_floor_once(raw, out / f"floor{k}", floor_inputs))
    seconds, result = min(prepares, key=lambda pass_: pass_[0])
    return {
        "first_seconds": first,
        "seconds": seconds,
        "floor": min(floors, key=lambda pass_: pass_["seconds"]),
        "prepare_passes": [pass_[0] for pass_ in prepares],
        "floor_passes": [pass_["seconds"] for pass_ in floors],
        "stage_seconds": result.seconds,
        "checks_passed": {name: all(bool(r.checks[name]["passed"]) for _, r in prepares) for name in result.checks},
        "num_points": result.stages["point_cloud"]["num_points"],
        "num_objects": result.stages["instance_masks"]["num_objects"],
        "num_frames": result.stages["marked_frames"]["num_frames"],
        "baseline_rss_mib": baseline,
        "peak_rss_mib": peak,
        "outputs": [str(out / f"prepare{k}" / raw.name) for k in range(STEADY_PASSES)],
    }


@dataclass(frozen=True)
class _FloorInputs:
    """What ``_floor_once`` encodes: the outputs of one ``prepare_scene`` run, loaded, and its settings."""

    settings: Any
    coord: Any
    color: Any
    instances: Any
    instance_source: str
    bev: Any
    bev_meta: dict[str, Any]
    frames_meta: dict[str, Any]
    previews: list[Any]


def _floor_inputs(reference: Path, previews: dict[str, bytes]) -> _FloorInputs:
    """What ``_floor_once`` encodes, loaded (untimed) from the outputs ``prepare_scene`` wrote under ``reference``
    and its UI ``previews``: settings, the four arrays, the three JSON documents, the BEV image and the previews
    decoded (so they are encoded again at the sizes prepare_scene encoded them)."""
    import cv2
    import numpy as np

    from ops.core.layout import SceneLayout
    from ops.prompts.driver import PromptSettings
    from ops.prompts.instances import Instances

    saved = SceneLayout(reference)
    labels = json.loads(saved.labels.read_text())
    return _FloorInputs(
        settings=PromptSettings(),
        coord=np.load(saved.coord),
        color=np.load(saved.color),
        instances=Instances(np.load(saved.instance), np.load(saved.boxes), labels["objects"]),
        instance_source=labels["source"],
        bev=cv2.imread(str(saved.bev_image), cv2.IMREAD_COLOR_RGB),
        bev_meta=json.loads(saved.bev_meta.read_text()),
        frames_meta=json.loads(saved.frames_meta.read_text()),
        previews=[cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB) for data in previews.values()],
    )


def _floor_once(raw: Path, out: Path, inputs: _FloorInputs) -> dict[str, Any]:
    """One timed pass of the I/O floor of ``prepare_scene``, writing into ``out``: the reads, decodes, encodes and
    writes it cannot avoid, nothing else.

    Timed: open the scene (header and frame index), read and decode the sampled frames (colour and depth) one at
    a time as ``prepare_scene`` does, the mesh and the annotation files the gt instances come from (segments and
    aggregation JSON); encode every output ``prepare_scene`` writes at the size it wrote it (marked and raw JPEG
    per frame, the BEV PNG, the four ``.npy`` arrays, the three JSON files) and the two UI preview WebPs, and
    write the files through ``ops.core.atomic`` into the four artifact folders (staged folder, fsync + rename, as the
    artifacts are): the frames with the layout's names, the other three folders by the writer's own functions.
    Not timed: the resizes to the saved sizes; the content comes from ``_floor_inputs``.
    """
    import numpy as np

    from ops.core.atomic import staging_dir, write_bytes, write_json
    from ops.core.layout import SceneLayout, marked_frame_name, raw_frame_name
    from ops.prompts.driver import PREVIEW_WEBP_QUALITIES
    from ops.prompts.frames import resize_frame, sample_frame_indices
    from ops.prompts.writer import encode_jpeg, encode_webp, save_bev, write_instances, write_pointcloud
    from ops.scannet.annotations import read_aggregation, read_segs
    from ops.scannet.scene import open_scene

    settings, layout = inputs.settings, SceneLayout(out)
    seconds = {"read_frames": 0.0, "read_mesh_annotations": 0.0, "encode_write": 0.0}

    def add(part: str, since: float) -> float:
        now = time.perf_counter()
        seconds[part] += now - since
        return now

    start = time.perf_counter()
    scene = open_scene(raw)
    indices = sample_frame_indices(np.flatnonzero(scene.valid_frame_mask()), settings.n_frames)
    add("read_frames", start)
    with staging_dir(layout.frames) as frames_dir:
        for n, index in enumerate(indices):  # one frame at a time, as prepare_scene streams them
            start = time.perf_counter()
            (frame,) = scene.read_frames([index])
            add("read_frames", start)
            image = resize_frame(frame.rgb, scene.color_intrinsics, settings.image_resolution)[0]
            start = time.perf_counter()
            name = marked_frame_name(n)
            write_bytes(frames_dir / name, encode_jpeg(image))
            write_bytes(frames_dir / raw_frame_name(name), encode_jpeg(image))
            add("encode_write", start)
        start = time.perf_counter()
        write_json(frames_dir / layout.frames_meta.name, inputs.frames_meta)
    start = add("encode_write", start)
    mesh = scene.mesh()
    read_segs(scene.files.segs, scene.scene_id)
    read_aggregation(scene.files.aggregation, scene.scene_id)
    start = add("read_mesh_annotations", start)
    write_pointcloud(out, inputs.coord, inputs.color)
    write_instances(out, inputs.instances, inputs.instance_source)
    save_bev(out, inputs.bev, inputs.bev_meta)
    for preview in inputs.previews:
        encode_webp(preview, PREVIEW_WEBP_QUALITIES[0])  # the floor encodes once, at the best quality
    add("encode_write", start)
    return {
        "seconds": sum(seconds.values()),
        "parts": seconds,
        "num_vertices": len(mesh.vertices),
        "num_jpegs": 2 * len(indices),
        "jpeg_size": list(image.shape[1::-1]),
        "png_size": list(inputs.bev.shape[1::-1]),
    }


def _child_sequence(out_root: Path, raws: list[Path]) -> dict[str, Any]:
    """``prepare_scene`` on ``raws`` one after the other in this process (the plain-process reference for Ray)."""
    from ops.prompts.driver import prepare_scene

    start = time.perf_counter()
    task_seconds = {raw.name: sum(prepare_scene(raw, out_root / raw.name).seconds.values()) for raw in raws}
    return {"seconds": time.perf_counter() - start, "task_seconds": task_seconds}


def _child_profile(raw: Path, out: Path, top: int = 25) -> dict[str, Any]:
    """cProfile of one ``prepare_scene``: the functions with the most own time and the most cumulative time."""
    from ops.prompts.driver import prepare_scene

    profiler = cProfile.Profile()
    profiler.enable()
    prepare_scene(raw, out)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())

    def rows(key: int) -> list[list[Any]]:
        items = sorted(stats.stats.items(), key=lambda item: item[1][key], reverse=True)[:top]
        return [
            [f"{Path(f).name}:{line}({name})", calls, round(tt, 3), round(ct, 3)]
            for (f, line, name), (_, calls, tt, ct, _) in items
        ]

    return {"total": stats.total_tt, "by_own_time": rows(2), "by_cumulative": rows(3)}


# -- Ray fan-out ------------------------------------------------------------------------------------------------


def _warm_worker(seconds: float) -> int:
    """Import what a scene task imports, then hold the worker a moment so every worker gets one warm-up task."""
    import ops.prompts.driver  # noqa: F401

    time.sleep(seconds)
    return os.getpid()


def run_ray(scene_dirs: list[Path], out_root: Path, num_cpus: int) -> dict[str, Any]:
    """``prepare_scene`` for every scene, one Ray task each, on a local ``SceneRay`` with ``num_cpus`` workers.

    Start-up (``ray.init`` and one warm-up task per worker that imports the ops modules) is timed apart; the
    scene time runs from the first submit to the last result; scenes go largest first, as in
    ``assets.visual_prompts``.
    """
    import dagster as dg
    import ray

    from ops.prompts.driver import PromptSettings, largest_first, prepare_scene
    from resources.ray import SceneRay

    # Ray workers cannot import this file (it is not in a package): ship its functions by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    temp_dir = tempfile.mkdtemp(prefix="g4s-bench-ray-", dir="/tmp")  # short: Ray's socket paths are length-limited
    started = time.perf_counter()
    with dg.build_resources({"ray_cluster": SceneRay(num_cpus=num_cpus, temp_dir=temp_dir)}):
        try:
            warm = ray.remote(num_cpus=1)(_warm_worker)
            worker_pids = set(ray.get([warm.remote(1.0) for _ in range(num_cpus)]))
            startup = time.perf_counter() - started
            task = ray.remote(num_cpus=1)(prepare_scene)
            settings = PromptSettings()
            start = time.perf_counter()
            pending = [task.remote(str(d), str(out_root / d.name), settings) for d in largest_first(scene_dirs)]
            results = []
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                results.append(ray.get(done[0]))
            seconds = time.perf_counter() - start
        finally:
            ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)
    return {
        "seconds": seconds,
        "startup_seconds": startup,
        "workers": len(worker_pids),
        "load": os.getloadavg()[0],
        "task_seconds": {r.scene_id: sum(r.seconds.values()) for r in results},
    }


def run_plain(scene_dirs: list[Path], out_root: Path, processes: int) -> dict[str, Any]:
    """``prepare_scene`` over ``scene_dirs`` in ``processes`` plain processes at once, alternate scenes each; the
    time is the slowest child's, counted after its imports."""
    children = [start_child("sequence", out_root, *scene_dirs[k::processes]) for k in range(processes)]
    results = [collect_child(child) for child in children]
    return {
        "seconds": max(r["seconds"] for r in results),
        "task_seconds": {name: t for r in results for name, t in r["task_seconds"].items()},
    }


def warm_page_cache(folder: Path) -> int:
    """Read every file under ``folder`` once so that no timed run pays for a cold disk; returns the bytes read."""
    total = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 24):
                total += len(chunk)
    return total


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path (to compare two runs byte for byte)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def main(argv: list[str]) -> None:
    mode, out, paths = argv[0], Path(argv[1]), [Path(arg) for arg in argv[2:]]
    out.mkdir(parents=True, exist_ok=True)
    if mode == "pair":
        result = _child_pair(paths[0], out)
    elif mode == "profile":
        result = _child_profile(paths[0], out)
    elif mode == "sequence":
        result = _child_sequence(out, paths)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
