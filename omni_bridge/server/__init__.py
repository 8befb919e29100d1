"""The HTTP service: threads, responses and messages under `/v1`, Omni-compatible AI Jobs under `/api/v1/ai/jobs`.

```python
from omni_bridge.config import load_settings
from omni_bridge.server import create_app

app = create_app(load_settings())  # an ASGI app; `omni-bridge serve` runs it with uvicorn
```

Each worker is one `Service` (stores, bridge, runner, lease reaper); several workers share a PostgreSQL store.

The service's parts load on first use, like `omni_bridge.agent`'s engines: they import the `anthropic` SDK,
which takes seconds, and `omni-bridge --help` (which registers `serve`) should not wait for it.
"""

from typing import TYPE_CHECKING

from omni_bridge._lazy import lazy_names as _lazy_names
from omni_bridge.stores import (
    Feedback,
    MessageRecord,
    Owner,
    ResponseError,
    ResponseRecord,
    ServiceStore,
    StoredEvent,
    ThreadRecord,
)

if TYPE_CHECKING:
    from omni_bridge.server._app import create_app
    from omni_bridge.server._auth import check_service_key, parse_service_keys
    from omni_bridge.server._envelope import ApiError
    from omni_bridge.server._runner import ResponseRunner
    from omni_bridge.server._service import Service
    from omni_bridge.server._tenants import TenantMode, TenantPolicy

_LAZY = {
    "ApiError": "omni_bridge.server._envelope",
    "ResponseRunner": "omni_bridge.server._runner",
    "Service": "omni_bridge.server._service",
    "TenantMode": "omni_bridge.server._tenants",
    "TenantPolicy": "omni_bridge.server._tenants",
    "check_service_key": "omni_bridge.server._auth",
    "create_app": "omni_bridge.server._app",
    "parse_service_keys": "omni_bridge.server._auth",
}


__getattr__, __dir__ = _lazy_names(globals(), _LAZY)


__all__ = [
    "ApiError",
    "Feedback",
    "MessageRecord",
    "Owner",
    "ResponseError",
    "ResponseRecord",
    "ResponseRunner",
    "Service",
    "ServiceStore",
    "StoredEvent",
    "TenantMode",
    "TenantPolicy",
    "ThreadRecord",
    "check_service_key",
    "create_app",
    "parse_service_keys",
]
