"""Every durable record of omni-bridge, per backend: one SQLite file or one PostgreSQL pool.

```python
from omni_bridge.stores import open_store

async with open_store(settings) as store:  # BRIDGE_STORE_URL, else BRIDGE_DATA_DIR/bridge.db
    async with Bridge(settings, store=store) as bridge:
        ...
```

A backend is one object (`SqliteStore`, `PostgresStore`) that is both the `Bridge`'s conversation store and the
HTTP service's `ServiceStore`, so a conversation and its thread live in one database under one id, and the end
of an answer (response finished, assistant message, transcript) is written in one transaction. The memory
store, the library's default, is `omni_bridge.agent.MemoryConversationStore`.

`PostgresStore` loads on first use: its driver (psycopg) is the optional `postgres` extra.
"""

from typing import TYPE_CHECKING, Any as _Any

from omni_bridge.stores._location import STORE_FILE, StoreLocation, open_store, store_location
from omni_bridge.stores._protocol import PruneCounts, ServiceStore, Store
from omni_bridge.stores._records import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Feedback,
    MessageRecord,
    Owner,
    ResponseError,
    ResponseRecord,
    ResponseStatus,
    StoredEvent,
    ThreadRecord,
    WebhookTarget,
    new_id,
)
from omni_bridge.stores._rules import CANCELED_QUEUED, without_thinking
from omni_bridge.stores._sqlite_store import SqliteStore

if TYPE_CHECKING:
    from omni_bridge.stores._pg_store import PostgresStore


def __getattr__(name: str) -> _Any:
    if name != "PostgresStore":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from omni_bridge.stores._pg_store import PostgresStore  # raises ConfigError naming the extra without psycopg

    globals()[name] = PostgresStore
    return PostgresStore


__all__ = [
    "ACTIVE_STATUSES",
    "CANCELED_QUEUED",
    "STORE_FILE",
    "TERMINAL_STATUSES",
    "Feedback",
    "MessageRecord",
    "Owner",
    "PostgresStore",
    "PruneCounts",
    "ResponseError",
    "ResponseRecord",
    "ResponseStatus",
    "ServiceStore",
    "SqliteStore",
    "Store",
    "StoreLocation",
    "StoredEvent",
    "ThreadRecord",
    "WebhookTarget",
    "new_id",
    "open_store",
    "store_location",
    "without_thinking",
]
