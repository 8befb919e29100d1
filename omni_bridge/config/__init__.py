"""Configuration of omni-bridge: `Settings`, loaded from the environment or `.env` by `load_settings()`."""

from omni_bridge.config._settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]
