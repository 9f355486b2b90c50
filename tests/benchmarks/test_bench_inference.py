"""Benchmark of inference throughput on CPU (``make bench``): it prints measurements, it never asserts a time.

The tiny random Qwen2-VL answers the same 16 rows of a synthetic eval set (9 images each: BEV + 8 marked frames,
at most 16 visual tokens per image) greedily with 16 new tokens, side by side in one run:

- *batch 1*: one ``generate`` call per row;
- *batch 8*: left-padded batches of 8 (what ``ops.model.inference`` does by default).

Throughput is rows per second of the answering alone (images decoded and encoded included, model loading not);
each setting runs twice and the faster run counts. With a random model every row runs all 16 new tokens (it
rarely emits ``<|im_end|>``), so both settings do the same work. What the test asserts is correctness only: the
batched answers equal the unbatched ones.
"""

from __future__ import annotations

import time

from ops.model.inference import read_eval_rows, vlm_answerer
from ops.model.vlm import load_vlm

ROWS = 16
MAX_NEW_TOKENS = 16
REPEATS = 2


def _answer_all(answer, rows, batch_size):
    answers = []
    for start in range(0, len(rows), batch_size):
        answers += answer(rows[start : start + batch_size])
    return answers


def test_inference_throughput_batch_1_vs_8(eval_data, tiny_model_dir):
    vlm = load_vlm(tiny_model_dir)
    every = read_eval_rows(eval_data.eval_dirs["marked"])
    rows = every[:: max(1, len(every) // ROWS)][:ROWS]  # spread over the sample ids: rows of every task
    answer = vlm_answerer(vlm, None, MAX_NEW_TOKENS, 512)
    answer(rows[:2])  # warm-up: first-call allocations
    results = {}
    for batch_size in (1, 8):
        best, answers = float("inf"), []
        for _ in range(REPEATS):
            started = time.perf_counter()
            answers = _answer_all(answer, rows, batch_size)
            best = min(best, time.perf_counter() - started)
        results[batch_size] = (len(rows) / best, answers)
    single, batched = results[1], results[8]
    print(f"\ninference throughput, tiny Qwen2-VL on CPU, {len(rows)} rows x 9 images, {MAX_NEW_TOKENS} new tokens")
    print(f"   batch 1: {single[0]:6.2f} samples/s")
    print(f"   batch 8: {batched[0]:6.2f} samples/s")
    print(f"   ratio batch 8 / batch 1: {batched[0] / single[0]:.2f}x")
    assert batched[1] == single[1]
