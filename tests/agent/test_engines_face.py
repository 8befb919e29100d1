"""The engines' face: the `Engine` protocol and its two engines, `ClaudeEngine` loaded only on first use."""

from __future__ import annotations

import subprocess
import sys

import omni_bridge.agent
import omni_bridge.agent.engines as engines


def _modules_after(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(done.stdout.split())


def test_importing_the_agent_or_its_engines_does_not_load_the_anthropic_sdk() -> None:
    assert "anthropic" not in _modules_after("import omni_bridge.agent")
    assert "anthropic" not in _modules_after("import omni_bridge.agent.engines")
    assert "anthropic" in _modules_after("from omni_bridge.agent.engines import ClaudeEngine")


def test_the_agent_face_hands_out_the_engines_of_the_engines_package() -> None:
    assert omni_bridge.agent.ClaudeEngine is engines.ClaudeEngine
    assert omni_bridge.agent.OmniEngine is engines.OmniEngine
    assert omni_bridge.agent.Run is engines.Run
    assert sorted(engines.__all__) == ["ClaudeEngine", "Engine", "JobOptions", "OmniEngine", "Run"]


def test_each_engine_names_itself_as_a_conversation_records_it() -> None:
    assert (engines.ClaudeEngine.name, engines.OmniEngine.name) == ("claude", "omni")
