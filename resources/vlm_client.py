"""The zero-shot VLM: any OpenAI-compatible chat endpoint (an API model, or `gpt4scene serve` for one of ours)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from ops.model.zero_shot import ChatClient


class OpenAIChatClient(dg.ConfigurableResource):
    """Chat-completions endpoint for zero-shot evaluation.

    ``api_key`` comes from the environment (configure it as ``dg.EnvVar("GPT4SCENE_VLM_API_KEY")``); it is only
    sent as the request's bearer token, never logged, shown in ``repr`` or written to metadata. An empty key sends no
    ``Authorization`` header (a local `gpt4scene serve` needs none).
    """

    base_url: str = Field(description="Endpoint root ending in /v1, e.g. http://127.0.0.1:8000/v1.")
    model: str = Field(description="Model name sent with each request.")
    api_key: str = Field(default="", repr=False, description="Bearer token (env GPT4SCENE_VLM_API_KEY); empty: none.")
    timeout_s: float = Field(default=120.0, description="Per-request timeout, seconds.")
    max_tokens: int = Field(default=128, description="Answer length cap per request.")

    def client(self) -> ChatClient:
        """A plain HTTP client with this configuration."""
        return ChatClient(self.base_url, self.model, self.api_key, self.timeout_s, self.max_tokens)

    @property
    def public_settings(self) -> dict[str, str]:
        """What may be shown (metadata, logs): endpoint and model, never the key."""
        return {"base_url": self.base_url, "model": self.model}
