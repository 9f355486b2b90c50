"""Writes one shard set with ``ops.dataset.shards.write_shards`` (run as a separate process by test_crash_safety.py).

usage: python shard_child.py ROOT OUT_DIR [N]   with N: announce each finished Parquet file on stdout and stop
after the N-th, so the parent can SIGKILL the writer mid-set at a known point.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import ops.dataset.shards
from ops.core.atomic import write_bytes
from ops.dataset.samples import Sample

N_IMAGES, N_SAMPLES, IMAGE_BYTES = 24, 96, 48_000


def samples(root: Path) -> list[Sample]:
    """Deterministic samples whose 'images' are incompressible files under ``root``."""
    rng = np.random.default_rng(0)
    for index in range(N_IMAGES):
        path = root / "scenes" / "scene0000_00" / "frames" / f"frame_{index:02d}.jpg"
        if not path.exists():
            write_bytes(path, rng.bytes(IMAGE_BYTES))
    rows = []
    for index in range(N_SAMPLES):
        scene = f"scene{index % 4:04d}_00"
        images = tuple(f"scenes/scene0000_00/frames/frame_{(index + k) % N_IMAGES:02d}.jpg" for k in range(3))
        rows.append(Sample(f"s{index:04d}", scene, "scanqa", f"question {index}?", f"answer {index}", (), images))
    return rows


def main() -> None:
    root, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    rows = samples(root)
    if len(sys.argv) > 3:
        stop_after, written = int(sys.argv[3]), []
        write_table = ops.dataset.shards.pq.write_table

        def announced(table, where, **kwargs):
            write_table(table, where, **kwargs)
            written.append(where)
            print(f"wrote {where}", flush=True)
            if len(written) == stop_after:
                time.sleep(60)  # the parent kills us here

        ops.dataset.shards.pq.write_table = announced
    ops.dataset.shards.write_shards(rows, out_dir, root, "train", "crash_test", target_shard_bytes=600_000)
    print("done", flush=True)


if __name__ == "__main__":
    main()
