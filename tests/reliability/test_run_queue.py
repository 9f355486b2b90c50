"""dagster_home/dagster.yaml as the daemon loads it: a scene partition is never materialised by two runs at once, and
the UI shows no first-visit sign-up pop-up."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._utils.tags import TagConcurrencyLimitsCounter

INSTANCE_YAML = Path(__file__).resolve().parents[2] / "dagster_home" / "dagster.yaml"


@pytest.fixture
def instance(tmp_path):
    shutil.copy(INSTANCE_YAML, tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        yield instance
    finally:
        instance.dispose()


def scene_run(partition: str) -> dg.DagsterRun:
    return dg.DagsterRun(
        job_name="visual_prompts_job", tags={"dagster/partition": partition, "gpt4scene/run_kind": "scenes"}
    )


def test_a_second_run_of_one_partition_waits_in_the_queue(instance):
    limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    # The counter the queued-run daemon builds from these limits and the runs in progress.
    in_progress = TagConcurrencyLimitsCounter(limits, [scene_run("scene0000_00")])
    assert in_progress.is_blocked(scene_run("scene0000_00"))
    assert not in_progress.is_blocked(scene_run("scene0001_00"))


def test_the_sign_up_pop_up_is_off(instance):
    assert not instance.nux_enabled
