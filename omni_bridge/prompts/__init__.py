"""Prompt templates, kept as text files in this package and read with `importlib.resources`."""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["load_prompt", "system_prompt"]


@cache
def load_prompt(name: str) -> str:
    """The text of `omni_bridge/prompts/<name>.txt`."""
    return resources.files(__name__).joinpath(f"{name}.txt").read_text(encoding="utf-8")


def system_prompt(*, model_id: str | None = None, topic_name: str | None = None) -> str:
    """The agent's system prompt, stating what the deployment pinned (so the model does not re-select it)."""
    scope = []
    if model_id:
        scope.append(f"- The Omni model is fixed to {model_id}; do not pick another.")
    if topic_name:
        scope.append(f"- The topic is fixed to {topic_name!r}; questions outside it cannot be answered here.")
    return load_prompt("system").replace("{scope}", "\n".join(scope)).replace("\n\n\n", "\n\n").strip() + "\n"
