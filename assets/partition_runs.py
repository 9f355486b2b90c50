"""What the assets that do many partitions in one run share (visual prompts of scenes and captures, manifests).

For the visual prompts (assets/visual_prompts.py, assets/captures.py), every partition of a run is one Ray task
whose result is an ``ops.prompts.driver.SceneResult``. The tasks are all submitted, then collected with
``ray.wait`` as they finish; each finished partition reports its own materialisations and check evaluations at
once, so one bad partition fails only itself: the others are recorded, and the run then fails naming every bad
partition with its reason.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator, Mapping

import dagster as dg

from ops.core.errors import SceneInputError
from ops.prompts.driver import SceneResult

# Artifact checks of the visual prompts, with the stage (asset) each one checks.
CHECK_STAGES = {"bev_not_blank": "bev_image", "frames_distinct": "marked_frames", "markers_complete": "marked_frames"}


def on_this_node(result: SceneResult) -> SceneResult:
    """``result`` with the ID of the Ray node it was computed on (called inside the Ray task)."""
    import ray

    result.node_id = ray.get_runtime_context().get_node_id()
    return result


def failure_reason(exc: BaseException) -> str:
    """``Type: message`` of the exception a partition failed with (the task's own, not Ray's wrapper)."""
    cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the task's own exception
    return f"{type(cause).__name__}: {cause}"


def partition_folders(
    keys: Iterable[str], folders_of: Callable[[str], tuple[object, object]]
) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """Raw folder → (partition key, artifact folder) of every valid key, and the refused keys with their reason.

    A hostile key (typed into the UI's "Add partition") is refused alone, before any path exists."""
    folders, refused = {}, {}
    for key in keys:
        try:
            raw_dir, out_dir = folders_of(key)
        except SceneInputError as exc:
            refused[key] = failure_reason(exc)
            continue
        folders[str(raw_dir)] = (key, str(out_dir))
    return folders, refused


def finished_results(
    context: dg.AssetExecutionContext, pending: dict, failures: dict[str, str], noun: str
) -> Iterator[SceneResult]:
    """Each pending task's result (``pending``: Ray object ref → partition key) as soon as it finishes; a task that
    raised is logged and recorded in ``failures`` (key → reason) instead."""
    import ray

    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        key = pending.pop(done[0])
        try:
            yield ray.get(done[0])
        except Exception as exc:  # one bad partition fails only itself
            failures[key] = failure_reason(exc)
            context.log.error(f"{noun} {key} failed: {failures[key]}")


def partition_events(
    result: SceneResult,
    stages: tuple[str, ...],
    asset_key: Callable[[str], dg.AssetKey],
    stage_dirs: Mapping[str, object],
) -> Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation]:
    """The materialisation of each of ``stages`` (its folder, seconds, Ray node, the stage's metadata and its UI
    preview as an inline WebP) and the check evaluations of one finished partition."""
    for stage in stages:
        metadata: dict[str, object] = {
            "path": dg.MetadataValue.path(str(stage_dirs[stage])),
            "seconds": result.seconds.get(stage, 0.0),
            "ray_node_id": result.node_id,
        }
        metadata.update(_json_safe(result.stages.get(stage, {})))
        if stage == "bev_image" and "bev" in result.previews:
            metadata["preview"] = _image_md("BEV", result.previews["bev"])
        if stage == "marked_frames" and "frames" in result.previews:
            metadata["contact_sheet"] = _image_md("marked frames", result.previews["frames"])
        yield dg.AssetMaterialization(asset_key(stage), partition=result.scene_id, metadata=metadata)
    for name, outcome in result.checks.items():
        yield dg.AssetCheckEvaluation(
            asset_key=asset_key(CHECK_STAGES[name]),
            check_name=name,
            passed=bool(outcome["passed"]),
            partition=result.scene_id,
            metadata=_json_safe({key: value for key, value in outcome.items() if key != "passed"}),
        )


def partitions_failed(failures: dict[str, str], total: int, noun: str) -> dg.Failure:
    """The run's failure: how many of ``total`` partitions failed, each with its reason (also as metadata
    ``failed_<noun>s``)."""
    return dg.Failure(
        description=f"{len(failures)} of {total} {noun}s failed: "
        + "; ".join(f"{key}: {reason}" for key, reason in sorted(failures.items())),
        metadata={f"failed_{noun}s": dg.MetadataValue.json(failures)},
    )


def _json_safe(values: Mapping[str, object]) -> dict[str, object]:
    return {
        key: dg.MetadataValue.json(value) if isinstance(value, (list, dict)) else value for key, value in values.items()
    }


def _image_md(title: str, webp: bytes) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"![{title}](data:image/webp;base64,{base64.b64encode(webp).decode('ascii')})")
