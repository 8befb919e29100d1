"""From a question to an answer, as one user: the step `getData`, `askOmni` and AI Jobs share.

Resolves the model and topic the way Omni documents it (an explicit id wins, else the pinned header value,
else the AI picks; a pinned topic restricts the server to that topic; `ai_chat_topics` limits what may be
picked), turns the question into a query, runs it under the user's access grants and row-level security,
and shapes the result: CSV plus row count, truncation flag, the query that ran, topic and a chat link.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from omni_bridge.sandbox._directory import SandboxUser
from omni_bridge.sandbox._errors import SandboxHTTPError
from omni_bridge.sandbox._nlq import parse_question
from omni_bridge.sandbox._query import QueryResult, pick_topic, run_query, vocabulary_score
from omni_bridge.sandbox._semantic import MODELS, Model, Topic, get_model

__all__ = ["Answer", "Scope", "answer_question", "resolve_model", "resolve_topic", "visible_models"]

PREVIEW_ROWS = 10


@dataclass(frozen=True, slots=True)
class Scope:
    """What the caller pinned: `X-MCP-Model-ID`, `X-MCP-Topic-Name`, `X-MCP-Query-All-Views` or REST fields."""

    model_id: str | None = None
    topic_name: str | None = None
    query_all_views: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """A question answered as one user."""

    question: str
    model: Model
    topic: Topic
    result: QueryResult
    chat_url: str

    def structured(self) -> dict[str, Any]:
        """The machine-readable result: what MCP `structuredContent` and job actions carry."""
        return {
            "modelId": self.model.id,
            "topicName": self.topic.name,
            "rowCount": len(self.result.rows),
            "totalRowCount": self.result.total_row_count,
            "truncated": self.result.truncated,
            "fields": self.result.columns,
            "csv": self.result.to_csv(),
            "query": self.result.query.to_omni_dict(),
            "accessFilters": self.result.access_filters,
            "sql": self.result.sql,
            "omniChatUrl": self.chat_url,
        }

    def summary(self) -> str:
        """A short markdown summary: what was asked, what ran, and the first rows."""
        result = self.result
        lines = [f"**{self.topic.label}** — {len(result.rows)} row(s)"]
        if result.truncated:
            lines[0] += f" of {result.total_row_count} (truncated)"
        lines.append("")
        lines.append("| " + " | ".join(result.labels) + " |")
        lines.append("|" + "---|" * len(result.labels))
        for row in result.rows[:PREVIEW_ROWS]:
            lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
        if len(result.rows) > PREVIEW_ROWS:
            lines.append(f"| … {len(result.rows) - PREVIEW_ROWS} more row(s) |")
        return "\n".join(lines)

    def text(self) -> str:
        """The text an MCP client reads: summary, then the full CSV."""
        r = self.result
        return (
            f"Topic: {self.topic.name} (model {self.model.name})\n"
            f"Rows: {len(r.rows)} of {r.total_row_count}{' (truncated)' if r.truncated else ''}\n"
            f"Open in Omni: {self.chat_url}\n\n"
            f"```csv\n{r.to_csv()}```"
        )


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def resolve_model(scope: Scope, question: str = "", user: SandboxUser | None = None) -> Model:
    """The model a request works on: the pinned one, else the one whose topics best match the question.

    Omni's clients call `pickModel` when no model is pinned; picking here too lets a single `getData` call
    work. Ties (and an empty question) go to the first model, E-commerce. With a `user`, only the models they
    may see count (`visible_models`): a hidden one is as unknown as a model that does not exist.

    Raises:
        SandboxHTTPError: 404 for an unknown (or hidden) model id, or when the user may see no model.
    """
    models = visible_models(user)
    if scope.model_id:
        try:
            model = get_model(scope.model_id)
        except KeyError:
            raise SandboxHTTPError(404, f"Model {scope.model_id} not found") from None
        if model not in models:
            raise SandboxHTTPError(404, f"Model {scope.model_id} not found")
        return model
    if not models:
        raise SandboxHTTPError(404, "There is no model you can query")
    text = question.lower()
    return max(models, key=lambda m: vocabulary_score(pick_topic(m, question), text))


def visible_models(user: SandboxUser | None) -> tuple[Model, ...]:
    """The models `user` may see: all but those their `modelRoles` set to `NO_ACCESS` (all, without a user)."""
    if user is None or not user.hidden_models:
        return MODELS
    return tuple(m for m in MODELS if m.id not in user.hidden_models and m.name not in user.hidden_models)


def resolve_topic(model: Model, question: str, scope: Scope, requested: str | None) -> Topic:
    """The topic to query: the requested one, else the pinned one, else the AI's pick.

    Raises:
        SandboxHTTPError: 404 for a topic that does not exist or is outside `ai_chat_topics`; 400 when a
            different topic is requested than the one the session is pinned to.
    """
    if requested and scope.topic_name and requested != scope.topic_name:
        raise SandboxHTTPError(
            400, f"This session is restricted to topic {scope.topic_name!r} (X-MCP-Topic-Name); got {requested!r}"
        )
    name = requested or scope.topic_name
    if name:
        try:
            topic = model.topic(name)
        except KeyError:
            raise SandboxHTTPError(404, f"Topic {name!r} not found in model {model.name!r}") from None
        if model.ai_chat_topics is not None and topic.name not in model.ai_chat_topics:
            raise SandboxHTTPError(404, f"Topic {name!r} is not available to AI in model {model.name!r}")
        return topic
    return pick_topic(model, question)


def answer_question(
    conn: sqlite3.Connection,
    user: SandboxUser,
    question: str,
    *,
    scope: Scope,
    base_url: str,
    today: date,
    topic_name: str | None = None,
    limit: int | None = None,
) -> Answer:
    """Answer `question` as `user`.

    Raises:
        SandboxHTTPError: model or topic problems (see `resolve_model`, `resolve_topic`).
        SandboxQueryError: the question cannot be mapped, or the user may not see the data.
    """
    model = resolve_model(scope, question, user)
    topic = resolve_topic(model, question, scope, topic_name)
    query = parse_question(question, model, topic, today=today)
    if limit is not None:
        query = query.model_copy(update={"limit": limit})
    result = run_query(conn, model, query, user.query_user())
    return Answer(question, model, topic, result, f"{base_url.rstrip('/')}/chat/{uuid.uuid4()}")
