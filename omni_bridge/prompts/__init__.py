"""Prompt templates, kept as text files in this package and read with `importlib.resources`."""

from __future__ import annotations

from collections.abc import Collection
from functools import cache
from importlib import resources

__all__ = ["load_prompt", "system_prompt"]


@cache
def load_prompt(name: str) -> str:
    """The text of `omni_bridge/prompts/<name>.txt`."""
    return resources.files(__name__).joinpath(f"{name}.txt").read_text(encoding="utf-8")


def system_prompt(
    *, model_id: str | None = None, topic_name: str | None = None, tools: Collection[str] | None = None
) -> str:
    """The agent's system prompt, stating what the deployment pinned (so the model does not re-select it).

    `tools` are the names of the tools this user has (Omni's tool list follows the user's role: a Viewer has no
    `getData`), so the prompt never tells the model to call one it lacks; `None`: Omni's full list.
    """
    scope = []
    if model_id:
        scope.append(f"- The Omni model is fixed to {model_id}; do not pick another.")
    if topic_name:
        scope.append(f"- The topic is fixed to {topic_name!r}; questions outside it cannot be answered here.")
    text = load_prompt("system").replace("{scope}", "\n".join(scope)).replace("{query}", _query_rule(tools))
    return text.replace("\n\n\n", "\n\n").strip() + "\n"


def _query_rule(tools: Collection[str] | None) -> str:
    def has(name: str) -> bool:
        return tools is None or name in tools

    if has("getData") and has("askOmni"):
        return "Use getData (or askOmni for open-ended analysis) with a plain-English question"
    if has("getData"):
        return "Use getData with a plain-English question"
    if has("askOmni"):
        poll = ", then checkStatus with its jobId until the job is COMPLETE" if has("checkStatus") else ""
        return f"Ask askOmni a plain-English question{poll}"
    return "Use the tools you were given with a plain-English question; if none of them can query data, say so"
