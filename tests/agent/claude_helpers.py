"""What the agent tests that drive the claude engine share."""

from __future__ import annotations

from typing import Any

from omni_bridge.config import load_settings
from tests.conftest import Served


def settings_for(served: Served, fake_url: str, **overrides: Any) -> Any:
    """Settings for the claude engine on the served sandbox and the scripted fake Messages API at `fake_url`."""
    return load_settings(
        None,
        omni_base_url=served.url,
        omni_api_key=served.org_key,
        anthropic_api_key="test-key",
        anthropic_base_url=fake_url,
        bridge_engine="claude",
        **overrides,
    )
