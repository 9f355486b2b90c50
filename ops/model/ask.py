"""A free question about one prepared capture or scene, answered, with pictures of the objects the answer names:
the one code path of ``gpt4scene ask`` (``pipelines/cli/ask.py``) and the `ask_answer` asset (``assets/ask.py``).

The target is a prepared artifact folder (a path), or a name looked up under the storage root: ``captures/<name>/``,
then ``scenes/<name>/``; a capture still only raw (``<raw root>/captures/<name>/``) is prepared first
(``ops.capture.prepare_capture``). An experiment answers with its latest checkpoint version from the marked BEV and
frames, as in training (the base-model experiment with the base model itself); an OpenAI-compatible endpoint answers
zero-shot in GPT4Scene's 2x4 composite + BEV form (``ops.model.zero_shot``). When the answer names objects
(``<OBJxyz>``), the BEV with them highlighted and the frames showing them are written as PNG
(``ops.capture.highlight``), replacing the pictures of an earlier answer in the same folder.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ops.core.layout import ModelsLayout, SceneLayout, StorageLayout
from ops.model.inference import Log
from ops.model.zero_shot import ChatClient, named_objects, question_messages
from ops.scannet.scene_id import validate_scene_id

API_KEY_ENV = "GPT4SCENE_VLM_API_KEY"  # the only place an endpoint's API key is read from
PICTURE_GLOB = "*_highlight.png"  # the names ops.capture.highlight.write_highlights gives its pictures
THUMBNAIL_QUALITIES = (80, 65, 50, 35)  # JPEG qualities tried for a thumbnail, best first
THUMBNAIL_LONG_SIDE = 256  # px


def _no_log(_: str) -> None:
    pass


@dataclass(frozen=True)
class AskedQuestion:
    """An answer about the prepared folder ``scene_dir``, who gave it (``experiment version`` or ``model @ URL``),
    the object IDs it names (existing ones, in order) and the pictures written of them (BEV first; none when it names
    none)."""

    scene_dir: Path
    source: str
    answer: str
    objects: list[int]
    pictures: list[Path]


def resolve_target(target: str, layout: StorageLayout, raw_captures: Path, log: Log = _no_log) -> Path:
    """The prepared artifact folder of ``target`` (module docstring), preparing a raw capture first."""
    from ops.capture import prepare_capture

    path = Path(target)
    if (path / "bev").is_dir():
        return path
    name = validate_scene_id(target)
    for folder in (layout.capture(name), layout.scene(name)):
        if folder.bev_image.is_file() and folder.frames_meta.is_file():
            return folder.dir
    raw = raw_captures / name
    if raw.is_dir():
        log(f"preparing capture {name} (fusion, floor, proposals, BEV, frames)")
        prepare_capture(raw, layout.capture(name).dir)
        return layout.capture(name).dir
    raise FileNotFoundError(f"no prepared capture or scene {name!r} under {layout.root}, and no raw capture at {raw}")


def answer_with_checkpoint(
    scene_dir: Path, question: str, models: ModelsLayout, experiment: str, max_tokens: int
) -> tuple[str, str]:
    """(answer, checkpoint version) of ``experiment``'s latest version from the marked BEV and frames (the training
    form); a version that trained nothing (the base-model experiment) answers with the base model."""
    from ops.dataset.annotations import IMAGE_PLACEHOLDER
    from ops.model.inference import checkpoint_model_dirs
    from ops.model.training.publish import read_lineage
    from ops.model.training.versions import latest_version
    from ops.model.vlm import generate, load_image, load_vlm

    version = latest_version(models.experiment_checkpoints(experiment))
    if version is None:
        raise FileNotFoundError(f"experiment {experiment!r} has no checkpoint under {models.checkpoints}")
    checkpoint = models.checkpoint(experiment, version)
    lineage = read_lineage(checkpoint)
    base = Path(lineage["base_model"]["path"])
    vlm = (
        load_vlm(base)
        if lineage.get("checkpoint") == "base_model"
        else load_vlm(*checkpoint_model_dirs(base, checkpoint))
    )
    layout = SceneLayout(scene_dir)
    files = [layout.bev_image] + [layout.frame(e["file"]) for e in json.loads(layout.frames_meta.read_text())["frames"]]
    images = [load_image(path.read_bytes(), 512) for path in files]
    return generate(vlm, [(IMAGE_PLACEHOLDER * len(images) + question, images)], max_tokens)[0], version


def ask(
    target: str,
    question: str,
    layout: StorageLayout,
    raw_captures: Path,
    out_dir: Path,
    experiment: str | None = None,
    client: ChatClient | None = None,
    max_tokens: int = 128,
    log: Log = _no_log,
) -> AskedQuestion:
    """Answer ``question`` about ``target`` (``resolve_target``) with ``experiment``'s latest checkpoint under
    ``layout``'s models, or through ``client``, and write the pictures of the objects it names under ``out_dir``."""
    from ops.capture.highlight import write_highlights

    if (client is None) == (experiment is None):
        raise ValueError("answer with an experiment or an endpoint, one of the two")
    scene_dir = resolve_target(target, layout, raw_captures, log)
    if client is not None:
        answer, source = client.complete(question_messages(scene_dir, question)), f"{client.model} @ {client.base_url}"
    else:
        answer, version = answer_with_checkpoint(scene_dir, question, layout.models, experiment, max_tokens)
        source = f"{experiment} {version}"
    objects = named_objects(answer, len(np.load(SceneLayout(scene_dir).boxes, allow_pickle=False)))
    for stale in out_dir.glob(PICTURE_GLOB):
        stale.unlink()
    pictures = write_highlights(scene_dir, objects, out_dir) if objects else []
    return AskedQuestion(scene_dir, source, answer, objects, pictures)


def thumbnails_markdown(pictures: Sequence[Path], max_bytes: int = 30_000) -> str:
    """Markdown showing ``pictures`` as JPEG data-URL thumbnails (long side ``THUMBNAIL_LONG_SIDE`` px), each at
    the best quality that fits an equal share of ``max_bytes`` of base64, else the lowest; those that do not fit at
    all are named instead."""
    if not pictures:
        return ""
    share = max_bytes // len(pictures)
    lines, used = [], 0
    for path in pictures:
        rgb = cv2.imread(str(path), cv2.IMREAD_COLOR_RGB)
        scale = min(1.0, THUMBNAIL_LONG_SIDE / max(rgb.shape[:2]))
        small = cv2.resize(rgb, (int(rgb.shape[1] * scale), int(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        for quality in THUMBNAIL_QUALITIES:
            ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
            encoded = base64.b64encode(jpeg.tobytes()).decode("ascii")
            if ok and len(encoded) <= share:
                break
        if used + len(encoded) > max_bytes:
            lines.append(f"- `{path.name}` (not shown: over the preview budget)")
            continue
        used += len(encoded)
        lines.append(f"![{path.stem}](data:image/jpeg;base64,{encoded})")
    return "\n\n".join(lines)
