"""The `omni-bridge` command, run in-process against an embedded sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from omni_bridge.cli import main


@pytest.fixture(autouse=True)
def no_configured_omni(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("OMNI_BASE_URL", "OMNI_API_KEY", "ANTHROPIC_API_KEY", "OMNI_MODEL_ID", "OMNI_TOPIC_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_help_explains_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("sandbox", "doctor", "demo"):
        assert command in out


def test_doctor_masks_secrets_and_checks_the_embedded_sandbox(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-do-not-print")
    assert main(["doctor", "--user", "bob"]) == 0
    out = capsys.readouterr().out
    assert "sk-ant-do-not-print" not in out
    assert "ANTHROPIC_API_KEY" in out and "set (hidden)" in out
    assert "✓ REST" in out and "✓ MCP as 'bob'" in out and "getData" in out


def test_doctor_reports_an_unreachable_omni(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMNI_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("OMNI_API_KEY", "k")
    assert main(["doctor"]) == 1
    assert "cannot reach" in capsys.readouterr().out


def test_a_bad_setting_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMNI_TIMEOUT_SECONDS", "soon")
    assert main(["doctor"]) == 2
    assert "OMNI_TIMEOUT_SECONDS" in capsys.readouterr().err


def test_demo_answers_as_each_user_with_their_own_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--user", "alice", "--user", "bob", "--question", "revenue by region"]) == 0
    out = capsys.readouterr().out
    alice, bob = out.split("=== As ")[1:]
    assert "West" in alice and "East" not in alice
    assert "East" in bob and "West" not in bob
