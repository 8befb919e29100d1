"""Ready-made responders that behave like a small, predictable model, for end-to-end tests of an agent loop.

`tool_then_answer` follows a fixed plan of tool calls, then answers by quoting the tool results it got back,
so a test can check that results really travelled from the tools to the model. `call_every_tool` calls each
offered tool once with the simplest arguments its schema allows (like pydantic-ai's `TestModel`), then
answers the same way. `offered_tools_in_order` is a model that calls only what it is offered: of the tools
in the request, the ones a careful model would use, one per turn in that model's order (by default Omni's
documented flow `pickModel`, `pickTopic`, `getData`), each once per question; so the number of round trips it
needs is decided by what the agent offers, nothing else.

Both read where they are in the plan from the conversation itself (the assistant turns since the user's
last question), not from state of their own: one responder serves many conversations, retries included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from omni_bridge.testing._capture import CapturedRequest
from omni_bridge.testing._replies import Reply, ToolCall, text_reply, tool_use_reply

__all__ = [
    "CAREFUL_ORDER",
    "DEFAULT_ANSWER",
    "call_every_tool",
    "example_input",
    "offered_tools_in_order",
    "tool_then_answer",
]

DEFAULT_ANSWER = "Here is what the tools returned:\n{results}"
CAREFUL_ORDER = ("pickModel", "pickTopic", "getData")
"""Omni's documented flow: pick a model, pick a topic, run the query."""
QUESTION_FIELDS = ("prompt", "question")
"""Arguments that take the user's question, whether the schema requires them or not."""

Answer = str | Callable[[list[str]], str]
"""A template where `{results}` stands for the tool result texts (one per line), or a function of them."""


def tool_then_answer(
    *steps: ToolCall | Sequence[ToolCall], answer: Answer = DEFAULT_ANSWER
) -> Callable[[CapturedRequest], Reply]:
    """A responder that makes the planned tool calls, one step per turn, then answers quoting the results.

    Args:
        *steps: Each step is one assistant turn: a `ToolCall`, or several to request in the same turn.
        answer: The final text: a template where `{results}` is replaced by the last turn's tool result
            texts (one per line; error results read `error: ...`), or a function of that list.

    Example:
        ```python
        fake = FakeAnthropic(responder=tool_then_answer(ToolCall("getData", {"prompt": "revenue"})))
        # turn 1 asks for getData; turn 2 (with the tool_result) answers "Here is what the tools returned: ..."
        ```
    """
    plan = [[step] if isinstance(step, ToolCall) else list(step) for step in steps]
    if any(not calls for calls in plan):
        raise ValueError("every step needs at least one ToolCall")

    def respond(request: CapturedRequest) -> Reply:
        turn = _turns_since_question(request.messages)
        if turn < len(plan):
            return tool_use_reply(plan[turn])
        return text_reply(_render(answer, request.tool_result_texts))

    return respond


def call_every_tool(answer: Answer = DEFAULT_ANSWER) -> Callable[[CapturedRequest], Reply]:
    """A responder that calls every offered tool once, in one turn, then answers quoting the results.

    Arguments are built by `example_input` from each tool's `input_schema`. Tools without one (server tools)
    are skipped; with no tools at all it answers straight away.

    Args:
        answer: The final text, as for `tool_then_answer`.
    """

    def respond(request: CapturedRequest) -> Reply:
        calls = [
            ToolCall(str(tool["name"]), example_input(tool["input_schema"]))
            for tool in request.tools
            if isinstance(tool.get("input_schema"), dict)
        ]
        if calls and _turns_since_question(request.messages) == 0:
            return tool_use_reply(calls)
        return text_reply(_render(answer, request.tool_result_texts))

    return respond


def offered_tools_in_order(*order: str, answer: Answer = DEFAULT_ANSWER) -> Callable[[CapturedRequest], Reply]:
    """A responder that calls, one per turn, each tool of `order` the request offers, then answers quoting them.

    Tools not in the request's `tools` are skipped (never called), and so are offered tools not in `order`.
    Each call passes the question (the last user text) in the `prompt`/`question` fields its schema has and
    the simplest valid values (`example_input`) in its other required fields: no ids it would have to guess.

    Args:
        *order: tool names in the order a careful model uses them (default `CAREFUL_ORDER`).
        answer: The final text, as for `tool_then_answer`.
    """
    plan = order or CAREFUL_ORDER

    def respond(request: CapturedRequest) -> Reply:
        tools = [tool for tool in request.tools if isinstance(tool.get("input_schema"), dict)]
        offered = {str(tool["name"]): tool["input_schema"] for tool in tools}
        question, called = _question_and_calls(request.messages)
        for name in plan:
            if name in offered and name not in called:
                return tool_use_reply(ToolCall(name, _arguments(offered[name], question)))
        return text_reply(_render(answer, request.tool_result_texts))

    return respond


def _arguments(schema: dict[str, Any], question: str) -> dict[str, Any]:
    arguments = example_input(schema)
    arguments = arguments if isinstance(arguments, dict) else {}
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    arguments.update({name: question for name in QUESTION_FIELDS if name in properties})
    return arguments


def _question_and_calls(messages: list[dict[str, Any]]) -> tuple[str, set[str]]:
    """The user's last question and the names of the tools called since."""
    question, since = "", 0
    for index, message in enumerate(messages):
        content = message.get("content")
        if message.get("role") == "user" and not _has_tool_results(content):
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
            question = " ".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
            since = index + 1
    called = {
        str(block.get("name"))
        for message in messages[since:]
        if message.get("role") == "assistant" and isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_use"
    }
    return question, called


def example_input(schema: dict[str, Any]) -> Any:
    """The simplest value valid for a JSON schema: required properties only, first enum member, `""`, 0, ..."""
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options and isinstance(options[0], dict):
            return example_input(options[0])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            properties = {}
        required = [name for name in schema.get("required", []) if isinstance(properties.get(name), dict)]
        return {name: example_input(properties[name]) for name in required}
    if kind == "array":
        items = schema.get("items")
        count = int(schema.get("minItems", 0))
        return [example_input(items) for _ in range(count)] if isinstance(items, dict) else []
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    simple: dict[str, Any] = {"string": "a" * int(schema.get("minLength", 1)), "boolean": False, "null": None}
    return simple.get(str(kind))


def _turns_since_question(messages: list[dict[str, Any]]) -> int:
    """Assistant turns after the user's last question: the last user message that carries no tool results."""
    question = -1
    for index, message in enumerate(messages):
        if message.get("role") == "user" and not _has_tool_results(message.get("content")):
            question = index
    return sum(1 for message in messages[question + 1 :] if message.get("role") == "assistant")


def _has_tool_results(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content
    )


def _render(answer: Answer, results: list[str]) -> str:
    if callable(answer):
        return answer(results)
    return answer.replace("{results}", "\n".join(results))
