"""Fixtures shared by the service tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.stores._postgres import fresh_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The service store's URL: the default SQLite file, or a fresh PostgreSQL schema (where one is configured)."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_schema() as url:
        yield url
