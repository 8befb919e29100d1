"""omni-bridge: put an LLM agent in front of Omni Analytics data, acting for each end user.

The public surface grows with each layer; today: settings (`omni_bridge.config`), the error tree
(`omni_bridge.exceptions`) and the local Omni sandbox (`omni_bridge.sandbox`).
"""

from omni_bridge.config import Settings, load_settings
from omni_bridge.exceptions import ConfigError, OmniBridgeError, OmniError, OmniHTTPError

__all__ = ["ConfigError", "OmniBridgeError", "OmniError", "OmniHTTPError", "Settings", "load_settings"]
__version__ = "0.1.0"
