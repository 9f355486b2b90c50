"""``gpt4scene ask CAPTURE_OR_SCENE "question" [--experiment E | --endpoint URL --model NAME]``.

The capture or scene is a prepared artifact folder (a path), or a name looked up under the storage root:
``<root>/captures/<name>/``, then ``<root>/scenes/<name>/``; a capture still only raw (``<raw root>/captures/<name>/``)
is prepared first (``ops.capture.prepare_capture``). ``--experiment E`` answers with the latest checkpoint version of
experiment E (``<root>/models/checkpoints/E/``), from the marked BEV and frames as in training; ``--endpoint`` with
any OpenAI-compatible server, zero-shot in GPT4Scene's 2x4 composite + BEV form (``ops.model.zero_shot``), the API
key read only from ``$GPT4SCENE_VLM_API_KEY`` and never printed. The answer is printed; when it names objects
(``<OBJxyz>``), the BEV with them highlighted and the frames showing them are written as PNG and their paths printed.
The work is ``ops.model.ask.ask``, which the `ask_answer` asset calls too.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipelines.cli.common import Command, step


def cmd_ask(args: argparse.Namespace) -> int:
    from ops.core.errors import SceneInputError
    from ops.core.layout import StorageLayout
    from ops.model.ask import API_KEY_ENV, ask
    from ops.model.zero_shot import ChatClient
    from resources.environment import apply_defaults

    apply_defaults(args.root, location=False)
    layout = StorageLayout(Path(os.environ.get("GPT4SCENE_ROOT", "data")).resolve())
    raw_root = Path(os.environ["GPT4SCENE_RAW_ROOT"]) if os.environ.get("GPT4SCENE_RAW_ROOT") else layout.root / "raw"
    out = Path(args.out) if args.out else Path("ask") / Path(args.target).name
    client = None
    if args.endpoint:
        client = ChatClient(args.endpoint, args.model, os.environ.get(API_KEY_ENV, ""), max_tokens=args.max_tokens)
    try:
        asked = ask(
            args.target,
            args.question,
            layout,
            raw_root / "captures",
            out,
            args.experiment,
            client,
            args.max_tokens,
            step,
        )
    except (FileNotFoundError, SceneInputError, RuntimeError) as exc:
        print(f"gpt4scene ask: {exc}", file=sys.stderr)
        return 1
    print(asked.answer)
    for path in asked.pictures:
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
