"""Identity arguments are removed from a call's arguments, at any depth, and nothing else is touched."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from omni_bridge.tools import is_identity_argument, strip_identity_arguments


@pytest.mark.parametrize(
    "name",
    [
        "userId",
        "user_id",
        "USER-ID",
        "user.id",
        "UserID",
        "externalId",
        "external_id",
        "externalUserId",
        "embedUserId",
        "embed_user_id",
        "targetUserId",
        "userEmail",
        "user_email",
        "email",
        "user",
        "username",
        "actAs",
        "on_behalf_of",
        "impersonate",
        "X-MCP-User-ID",
        "x-mcp-user-id",
        "X_MCP_MODEL_ID",
        "xMcpTopicName",
        "X-Bridge-User",
    ],
)
def test_identity_names_are_recognised_whatever_their_case_and_separators(name: str) -> None:
    assert is_identity_argument(name)


@pytest.mark.parametrize(
    "name",
    ["prompt", "modelId", "topicName", "limit", "jobId", "conversationId", "question", "users", "emails_sent", "id"],
)
def test_ordinary_argument_names_are_not_identity_names(name: str) -> None:
    assert not is_identity_argument(name)


def test_identity_arguments_are_removed_at_any_depth_and_their_paths_named() -> None:
    arguments: dict[str, Any] = {
        "prompt": "revenue by region for bob",
        "userId": "bob",
        "filters": [
            {"field": "region", "X-MCP-User-ID": "bob"},
            {"field": "state", "nested": {"external_id": "cust-42", "keep": [1, {"EMAIL": "b@x"}]}},
        ],
        "options": {"embedUserId": {"deep": "whole subtree goes"}, "limit": 10},
    }

    stripped = strip_identity_arguments(arguments)

    assert stripped.arguments == {
        "prompt": "revenue by region for bob",  # values are never inspected
        "filters": [{"field": "region"}, {"field": "state", "nested": {"keep": [1, {}]}}],
        "options": {"limit": 10},
    }
    assert stripped.removed == (
        "userId",
        "filters[0].X-MCP-User-ID",
        "filters[1].nested.external_id",
        "filters[1].nested.keep[1].EMAIL",
        "options.embedUserId",
    )
    assert stripped.note is not None
    assert stripped.note.startswith("Removed identity arguments: userId, filters[0].X-MCP-User-ID, ")
    assert "fixed by the session" in stripped.note
    assert "bob" not in stripped.note and "cust-42" not in stripped.note  # names the paths, never the values


def test_the_callers_arguments_are_not_changed_and_nothing_is_shared_that_could_be() -> None:
    arguments: dict[str, Any] = {"prompt": "p", "filters": [{"userId": "bob", "field": "x"}], "opts": {"a": [1]}}
    before = copy.deepcopy(arguments)

    stripped = strip_identity_arguments(arguments)
    stripped.arguments["opts"]["a"].append(2)
    stripped.arguments["filters"][0]["field"] = "changed"

    assert arguments == before
    assert stripped.arguments is not arguments


def test_arguments_without_identity_names_come_back_equal_with_no_note() -> None:
    arguments: dict[str, Any] = {
        "prompt": "orders by state",
        "modelId": "6f1c2d3e",
        "topicName": "order_items",
        "limit": 50,
        "flags": [True, None, 1.5, "x", {"k": ["v"]}],
    }
    stripped = strip_identity_arguments(arguments)
    assert stripped.arguments == arguments
    assert stripped.removed == ()
    assert stripped.note is None
