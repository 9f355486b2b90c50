"""The project's Dagster instance configuration, and `gpt4scene ui` (= `make ui`): loopback only, clean stop."""

from __future__ import annotations

import signal

import dagster as dg
import pytest
from uiproc import listening_addresses, start_ui, stop_ui, temp_dagster_home


def test_project_instance_config_loads(tmp_path):
    """dagster_home/dagster.yaml, loaded as the webserver and daemon load it, has the settings the pipeline needs."""
    instance = dg.DagsterInstance.from_config(str(temp_dagster_home(tmp_path / "home")))
    try:
        assert not instance.telemetry_enabled
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["poll_interval_seconds"] <= 60
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 1  # the training asset's `gpu_train` pool: one slot
        queue = concurrency.run_queue_config
        assert {"key": "gpt4scene/run_kind", "value": "scenes", "limit": 2} in queue.tag_concurrency_limits
        assert queue.max_concurrent_runs >= 2
    finally:
        instance.dispose()


@pytest.mark.slow
def test_ui_binds_loopback_and_stops_cleanly_on_sigterm(tmp_path):
    """SIGTERM as a service manager sends it; Ctrl-C (SIGINT) is checked at the end of the browser test."""
    signum = signal.SIGTERM
    server = start_ui(temp_dagster_home(tmp_path / "home"), tmp_path / "root", tmp_path / "ui.log")
    try:
        tree = server.tree()
        assert len(tree) >= 4, f"expected dagster dev, webserver, daemon and code server, got {sorted(tree)}"
        addresses = listening_addresses(tree)
        assert ("127.0.0.1", server.port) in addresses
        assert {host for host, _ in addresses} == {"127.0.0.1"}, addresses
    finally:
        left, seconds = stop_ui(server, signum, timeout=15)
    log = server.log.read_text()[-3000:]
    assert not left, f"still alive {seconds:.0f} s after {signum.name}: {sorted(left)}\n{log}"
    assert server.process.returncode is not None
