"""Settings: every knob from the environment or `.env`, clear errors, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from omni_bridge.config import load_settings
from omni_bridge.exceptions import ConfigError

ENV_NAMES = [
    "OMNI_BASE_URL",
    "OMNI_API_KEY",
    "OMNI_MODEL_ID",
    "OMNI_TOPIC_NAME",
    "OMNI_QUERY_ALL_VIEWS",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_MODEL",
    "OMNI_TIMEOUT_SECONDS",
    "BRIDGE_DATA_DIR",
    "BRIDGE_ENGINE",
    "OMNI_MCP_PROTOCOL",
    "OMNI_AUTH",
    "OMNI_EMBED_SECRET",
    "OMNI_MCP_PATH",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout


def test_defaults_use_the_sandbox_and_the_omni_engine() -> None:
    settings = load_settings()
    assert settings.uses_sandbox
    assert settings.effective_engine() == "omni"
    assert settings.omni_mcp_path == "/mcp/https" and settings.omni_mcp_protocol == "auto"
    assert settings.omni_auth == "org_key" and settings.omni_embed_secret is None


def test_values_come_from_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "OMNI_BASE_URL=https://acme.omniapp.co\nOMNI_API_KEY=from-dotenv\nOMNI_TOPIC_NAME=order_items\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("OMNI_TOPIC_NAME", "customers")  # the environment wins over .env
    monkeypatch.setenv("OMNI_QUERY_ALL_VIEWS", "true")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    settings = load_settings()
    assert str(settings.omni_base_url) == "https://acme.omniapp.co/"
    assert settings.omni_api_key is not None and settings.omni_api_key.get_secret_value() == "from-dotenv"
    assert settings.omni_topic_name == "customers"
    assert settings.omni_query_all_views is True
    assert not settings.uses_sandbox and settings.effective_engine() == "claude"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OMNI_BASE_URL", "not a url"),
        ("OMNI_MODEL_ID", "model-1"),
        ("OMNI_QUERY_ALL_VIEWS", "maybe"),
        ("OMNI_TIMEOUT_SECONDS", "-3"),
        ("OMNI_MCP_PROTOCOL", "http3"),
        ("OMNI_AUTH", "oauth"),
        ("OMNI_MCP_PATH", "mcp"),
        ("BRIDGE_ENGINE", "gpt"),
        ("ANTHROPIC_MAX_TOKENS", "0"),
    ],
)
def test_a_wrong_value_fails_with_the_variable_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert name in str(caught.value)
    assert value not in str(caught.value) or len(value) < 4  # the message explains, it does not echo input


def test_secrets_never_appear_in_repr_str_or_describe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_API_KEY", "omni-very-secret-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret")
    monkeypatch.setenv("OMNI_EMBED_SECRET", "embed-very-secret")
    monkeypatch.setenv("OMNI_AUTH", "embed_token")
    settings = load_settings()
    shown = repr(settings) + str(settings) + repr(settings.describe())
    assert "very-secret" not in shown
    assert ("OMNI_API_KEY", "set (hidden)") in settings.describe()
    assert ("OMNI_EMBED_SECRET", "set (hidden)") in settings.describe()
    assert ("OMNI_AUTH", "embed_token") in settings.describe()


def test_a_bad_secret_value_is_not_echoed_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_BASE_URL", "https://acme.omniapp.co")
    monkeypatch.setenv("OMNI_MODEL_ID", "sk-looks-like-a-secret")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "sk-looks-like-a-secret" not in str(caught.value)
