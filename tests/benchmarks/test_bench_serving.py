"""Benchmark of `gpt4scene serve` batching on CPU (``make bench``): it prints measurements, it never asserts a time.

A real server subprocess (the tiny random Qwen2-VL, batches of up to 8 gathered within 50 ms) answers the same
24 requests (one 64x64 image and a question each, 16 new tokens) twice: one client sending them one after
another, then 8 concurrent clients. Throughput is requests per second over the whole wall time; the answers of the
two runs must be identical (what the test asserts). Goal: 8 concurrent clients >= 2x the sequential throughput.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from serve_process import answer_of, chat_body, png_data_url, post, running_server

REQUESTS = 24
CLIENTS = 8
NEW_TOKENS = 16


def test_serving_throughput_sequential_vs_8_concurrent_clients(tiny_model_dir, tmp_path):
    bodies = [chat_body(f"Question {i}: what is shown?", png_data_url(i), NEW_TOKENS) for i in range(REQUESTS)]
    flags = ("--max-batch-size", str(CLIENTS), "--batch-window-ms", "50")
    with running_server(tiny_model_dir, tmp_path / "serve.log", *flags) as base:
        post(base, bodies[0])  # warm-up
        started = time.perf_counter()
        sequential = [post(base, body) for body in bodies]
        sequential_s = time.perf_counter() - started
        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            concurrent = list(pool.map(lambda body: post(base, body), bodies))
        concurrent_s = time.perf_counter() - started
    ratio = sequential_s / concurrent_s
    print(f"\nserving throughput, tiny Qwen2-VL on CPU, {REQUESTS} requests, {NEW_TOKENS} new tokens")
    print(f"   1 client, sequential : {REQUESTS / sequential_s:6.2f} requests/s")
    print(f"   {CLIENTS} concurrent clients: {REQUESTS / concurrent_s:6.2f} requests/s")
    print(f"   ratio: {ratio:.2f}x (goal >= 2x)")
    assert [status for status, _ in sequential + concurrent] == [200] * (2 * REQUESTS)
    assert [answer_of(reply) for _, reply in concurrent] == [answer_of(reply) for _, reply in sequential]
