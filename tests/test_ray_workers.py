"""Scene workers of the local Ray get ``resources.ray.WORKER_ENV`` before they start, so it takes effect."""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
import tempfile

import dagster as dg
import ray

from resources.ray import WORKER_ENV, SceneRay

LARGE_BLOCK = 40_000_000  # bytes: over glibc's largest automatic mmap threshold (32 MiB), under the worker's 64 MiB


def _worker_view() -> dict:
    """In the worker: its environment, and how many of three large mallocs glibc served by mmap (``hblks``)."""

    class _MallocInfo(ctypes.Structure):  # glibc's struct mallinfo2 (defined here: Ray ships this function by value)
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in (
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            )
        ]

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallinfo2.restype = _MallocInfo
    before = libc.mallinfo2().hblks
    blocks = [libc.malloc(LARGE_BLOCK) for _ in range(3)]
    mapped = libc.mallinfo2().hblks - before
    for block in blocks:
        libc.free(block)
    return {"env": {name: os.environ.get(name) for name in WORKER_ENV}, "mmapped_blocks": mapped}


def test_scene_workers_run_single_threaded_with_the_heap_malloc():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # tests/ is not a package the worker imports
    temp_dir = tempfile.mkdtemp(prefix="g4s-rw-", dir="/tmp")  # short: Ray's socket paths are length-limited
    try:
        with dg.build_resources({"ray_cluster": SceneRay(num_cpus=1, temp_dir=temp_dir)}):
            try:
                view = ray.get(ray.remote(num_cpus=1)(_worker_view).remote())
            finally:
                ray.shutdown()
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert view["env"] == WORKER_ENV
    # glibc read GLIBC_TUNABLES at exec: the 40 MB blocks came from the heap, where a default process maps each
    assert view["mmapped_blocks"] == 0
