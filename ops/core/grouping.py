"""Rows grouped by a non-negative integer key with one stable sort (contiguous runs, each run's bounds), and the
bounds of a whole point array."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Runs:
    """The rows whose key is >= 0, sorted by key: run k is ``order[starts[k]:ends[k]]`` and has key ``keys[k]``.

    The sort is stable, so the rows of a run keep their original order.
    """

    order: np.ndarray
    keys: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


def runs_by_key(keys: np.ndarray) -> Runs:
    """Group the row indices of ``keys`` [N] (ints; negative = in no group) into runs of equal key."""
    keys = np.asarray(keys).astype(np.int64)
    member = np.flatnonzero(keys >= 0)
    order = member[np.argsort(keys[member], kind="stable")]
    run_keys, starts, counts = np.unique(keys[order], return_index=True, return_counts=True)
    return Runs(order, run_keys, starts, starts + counts)


def run_bounds(sorted_points: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lows, highs)`` [K,D]: the per-run minimum and maximum of points already sorted into runs."""
    if len(starts) == 0:
        empty = np.empty((0, sorted_points.shape[1]), dtype=sorted_points.dtype)
        return empty, empty
    return np.minimum.reduceat(sorted_points, starts), np.maximum.reduceat(sorted_points, starts)


def bounds(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` [D]: the per-column minimum and maximum of points [N,D], N >= 1.

    Column by column: numpy's axis-0 reduction of an [N,3] array walks the 3 columns in its inner loop and is
    ~25x slower (4.7 ms against 0.2 ms for 140k points)."""
    points = np.asarray(points)
    low = np.array([points[:, i].min() for i in range(points.shape[1])])
    high = np.array([points[:, i].max() for i in range(points.shape[1])])
    return low, high
