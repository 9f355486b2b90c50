"""``gpt4scene ask CAPTURE_OR_SCENE "question" [--experiment E | --endpoint URL --model NAME]``.

The capture or scene is a prepared artifact folder (a path), or a name looked up under the storage root:
``<root>/captures/<name>/``, then ``<root>/scenes/<name>/``; a capture still only raw (``<raw root>/captures/<name>/``)
is prepared first (``ops.capture.prepare_capture``). ``--experiment E`` answers with the latest checkpoint version of
experiment E (``<root>/models/checkpoints/E/``), from the marked BEV and frames as in training; ``--endpoint`` with
any OpenAI-compatible server, zero-shot in GPT4Scene's 2x4 composite + BEV form (``ops.model.zero_shot``), the API
key read only from ``$GPT4SCENE_VLM_API_KEY`` and never printed. The answer is printed; when it names objects
(``<OBJxyz>``), the BEV with them highlighted and the frames showing them are written as PNG and their paths printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipelines.cli.common import Command, step

API_KEY_ENV = "GPT4SCENE_VLM_API_KEY"


def resolve_target(target: str) -> Path:
    """The prepared artifact folder of ``target`` (module docstring), preparing a raw capture first."""
    from ops.capture import prepare_capture
    from ops.core.layout import StorageLayout
    from ops.scannet.scene_id import validate_scene_id

    path = Path(target)
    if (path / "bev").is_dir():
        return path
    name = validate_scene_id(target)
    layout = StorageLayout(Path(os.environ["GPT4SCENE_ROOT"]))
    for folder in (layout.capture(name), layout.scene(name)):
        if folder.bev_image.is_file() and folder.frames_meta.is_file():
            return folder.dir
    raw = Path(os.environ["GPT4SCENE_RAW_ROOT"]) / "captures" / name
    if raw.is_dir():
        step(f"preparing capture {name} (fusion, floor, proposals, BEV, frames)")
        prepare_capture(raw, layout.capture(name).dir)
        return layout.capture(name).dir
    raise FileNotFoundError(f"no prepared capture or scene {name!r} under {layout.root}, and no raw capture at {raw}")


def answer_with_checkpoint(scene_dir: Path, question: str, experiment: str, max_tokens: int) -> str:
    """The latest checkpoint of ``experiment`` answering from the marked BEV and frames (the training form)."""
    import json

    from ops.core.layout import SceneLayout, StorageLayout
    from ops.dataset.annotations import IMAGE_PLACEHOLDER
    from ops.model.inference import checkpoint_model_dirs
    from ops.model.training.publish import read_lineage
    from ops.model.training.versions import latest_version
    from ops.model.vlm import generate, load_image, load_vlm

    models = StorageLayout(Path(os.environ["GPT4SCENE_ROOT"])).models
    version = latest_version(models.experiment_checkpoints(experiment))
    if version is None:
        raise FileNotFoundError(f"experiment {experiment!r} has no checkpoint under {models.checkpoints}")
    checkpoint = models.checkpoint(experiment, version)
    base = read_lineage(checkpoint)["base_model"]["path"]
    vlm = load_vlm(*checkpoint_model_dirs(base, checkpoint))
    layout = SceneLayout(scene_dir)
    files = [layout.bev_image] + [layout.frame(e["file"]) for e in json.loads(layout.frames_meta.read_text())["frames"]]
    images = [load_image(path.read_bytes(), 512) for path in files]
    return generate(vlm, [(IMAGE_PLACEHOLDER * len(images) + question, images)], max_tokens)[0]


def cmd_ask(args: argparse.Namespace) -> int:
    import numpy as np

    from ops.capture.highlight import write_highlights
    from ops.core.errors import SceneInputError
    from ops.core.layout import SceneLayout
    from ops.model.zero_shot import ChatClient, named_objects, question_messages
    from resources.environment import apply_defaults

    apply_defaults(args.root, location=False)
    try:
        scene_dir = resolve_target(args.target)
        if args.endpoint:
            client = ChatClient(args.endpoint, args.model, os.environ.get(API_KEY_ENV, ""), max_tokens=args.max_tokens)
            answer = client.complete(question_messages(scene_dir, args.question))
        else:
            answer = answer_with_checkpoint(scene_dir, args.question, args.experiment, args.max_tokens)
    except (FileNotFoundError, SceneInputError, RuntimeError) as exc:
        print(f"gpt4scene ask: {exc}", file=sys.stderr)
        return 1
    print(answer)
    ids = named_objects(answer, len(np.load(SceneLayout(scene_dir).boxes, allow_pickle=False)))
    if ids:
        out = Path(args.out) if args.out else Path("ask") / scene_dir.name
        for path in write_highlights(scene_dir, ids, out):
            print(path)
    return 0


def ask_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="capture or scene name (under --root), or a prepared artifact folder")
    parser.add_argument("question")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--experiment", help="answer with this experiment's latest checkpoint (local)")
    source.add_argument("--endpoint", help="OpenAI-compatible base URL ending in /v1 (key: $GPT4SCENE_VLM_API_KEY)")
    parser.add_argument("--model", default="", help="model name sent to --endpoint")
    parser.add_argument("--max-tokens", type=int, default=128, help="answer length cap")
    parser.add_argument("--root", default=None, help="storage root (default ./data or $GPT4SCENE_ROOT)")
    parser.add_argument("--out", default=None, help="folder for the highlight PNGs (default ./ask/<name>)")


COMMANDS = {
    "ask": Command("answer a question about a capture or scene, drawing the objects it names", ask_arguments, cmd_ask)
}
