"""The Omni sandbox: a local Omni look-alike (MCP + REST) with demo data and row-level security.

```python
from omni_bridge.sandbox import Sandbox

sandbox = Sandbox()
async with sandbox.serve() as url:        # or: with sandbox.run_in_thread() as url:
    ...                                   # MCP at f"{url}/mcp/https" (and /mcp), REST under f"{url}/api"
```

What it does where Omni's documentation is silent is listed in `docs/sandbox-guesses.md`.
"""

from omni_bridge.sandbox._app import EMBED_MCP_PATH, MCP_PATH, Sandbox, SandboxConfig
from omni_bridge.sandbox._directory import DEMO_EMBED_USERS, DEMO_ROLES, embed_user_id
from omni_bridge.sandbox._faults import Faults, Stats
from omni_bridge.sandbox._job_rules import demo_branch_id
from omni_bridge.sandbox._jobs import sign_webhook

__all__ = [
    "DEMO_EMBED_USERS",
    "DEMO_ROLES",
    "EMBED_MCP_PATH",
    "MCP_PATH",
    "Faults",
    "Sandbox",
    "SandboxConfig",
    "Stats",
    "demo_branch_id",
    "embed_user_id",
    "sign_webhook",
]
