"""PostgreSQL for tests: the database named by `OMNI_BRIDGE_TEST_POSTGRES_URL`, a fresh schema per use.

CI (`.ci/run`) and developers share one database, so every test works in a schema of its own (named in the
URL's `options=-csearch_path%3D…`, which the stores pass on to libpq) and drops it afterwards. Without the
variable the PostgreSQL tests are skipped, saying why; with it set, a missing driver or an unreachable
database fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

__all__ = ["ENV", "fresh_schema", "postgres_url", "with_search_path"]

ENV = "OMNI_BRIDGE_TEST_POSTGRES_URL"


def postgres_url() -> str:
    """The test database's URL; skips the test, saying why, when the variable is not set."""
    url = os.environ.get(ENV, "").strip()
    if not url:
        pytest.skip(f"{ENV} is not set: the PostgreSQL tests need a database (.ci/run sets it to the local server)")
    return url


def with_search_path(url: str, schema: str) -> str:
    """`url` with libpq `options` that put `schema` first on the search path."""
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


@contextmanager
def fresh_schema() -> Iterator[str]:
    """Create an empty schema, yield a URL that works in it, and drop it (with everything in it) afterwards."""
    base = postgres_url()
    name = f"ob_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield with_search_path(base, name)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
