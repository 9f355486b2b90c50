"""`ask_answer`: a question about one capture or scene, answered, with pictures of the objects the answer names, as
`gpt4scene ask` does it (``ops.model.ask``: the same function).

Unpartitioned; the launchpad config gives the capture or scene (a name under the storage root, or a prepared folder),
the question and either an experiment (its latest checkpoint, local) or an OpenAI-compatible endpoint and model name
(zero-shot, 2x4 frame grid + BEV; the API key only from ``$GPT4SCENE_VLM_API_KEY``, never shown). The pictures go to
``<root>/ask/<name>/`` (``StorageLayout.ask``), replacing those of the previous answer about the same target; the
metadata shows the answer, the objects it names, and the pictures as JPEG thumbnails (about 30 KB in all, as data
URLs) with their paths.
"""

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from ops.model.ask import API_KEY_ENV, ask, thumbnails_markdown
from ops.model.zero_shot import ChatClient
from resources.storage import StorageRoot


class AskConfig(dg.Config):
    """What to ask, about what, and whom: an experiment or an endpoint with its model."""

    target: str = Field(description="capture or scene name under the storage root, or a prepared artifact folder")
    question: str = Field(description="the question, e.g. 'Where is the desk?'")
    experiment: str = Field(default="", description="answer with this experiment's latest checkpoint (local)")
    endpoint: str = Field(default="", description=f"OpenAI-compatible base URL ending in /v1 (key: ${API_KEY_ENV})")
    model: str = Field(default="", description="model name sent to the endpoint")
    max_tokens: int = Field(default=128, ge=1, description="answer length cap")


@dg.asset(kinds={"python", "png"}, group_name="ask")
def ask_answer(context: dg.AssetExecutionContext, config: AskConfig, storage: StorageRoot) -> dg.MaterializeResult:
    """The answer to the configured question about a capture or scene, and pictures of the objects it names
    (`ask/<name>/`): the BEV with them highlighted and the frames that show them."""
    if bool(config.experiment) == bool(config.endpoint):
        raise dg.Failure("set `experiment` or `endpoint` (with `model`), one of the two")
    client = None
    if config.endpoint:
        api_key = os.environ.get(API_KEY_ENV, "")
        client = ChatClient(config.endpoint, config.model, api_key, max_tokens=config.max_tokens)
    out_dir = storage.layout.ask(Path(config.target).name)
    asked = ask(
        config.target,
        config.question,
        storage.layout,
        storage.captures_dir,
        out_dir,
        config.experiment or None,
        client,
        config.max_tokens,
        context.log.info,
    )
    context.log.info(f"{asked.source}: {asked.answer}")
    return dg.MaterializeResult(
        metadata={
            "question": config.question,
            "answer": dg.MetadataValue.text(asked.answer),
            "answered_by": asked.source,
            "target": dg.MetadataValue.path(str(asked.scene_dir)),
            "named_objects": dg.MetadataValue.json(asked.objects),
            "pictures": dg.MetadataValue.md(thumbnails_markdown(asked.pictures) or "(the answer names no object)"),
            "picture_paths": dg.MetadataValue.json([str(path) for path in asked.pictures]),
            "folder": dg.MetadataValue.path(str(out_dir)),
        }
    )
