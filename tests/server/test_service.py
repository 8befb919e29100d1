"""Starting the service: service keys or a development key, the store it uses, and the web page."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx2
import pytest

from omni_bridge import server
from omni_bridge._serving import serve_asgi
from omni_bridge.exceptions import ConfigError
from omni_bridge.server import Service, create_app
from omni_bridge.server._auth import ServiceKeys
from omni_bridge.stores import STORE_FILE, store_location
from tests.conftest import Served
from tests.server.service_helpers import KEY, data_of, service_settings


async def test_without_keys_a_loopback_service_makes_a_development_key_and_puts_it_on_the_page(
    served: Served, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = service_settings(served, tmp_path, None, bridge_service_keys=None)
    service = Service(settings, host="127.0.0.1")
    dev_key = service.dev_key
    assert dev_key is not None and len(dev_key) >= 32
    async with serve_asgi(create_app(settings, service=service)) as url:
        async with httpx2.AsyncClient(base_url=url) as client:
            page = await client.get("/")
            with_key = await client.get(
                "/v1/threads", headers={"Authorization": f"Bearer {dev_key}", "X-Bridge-User": "a"}
            )
            without = await client.get("/v1/threads", headers={"X-Bridge-User": "alice"})

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert f'"devKey": "{dev_key}"' in page.text and 'id="omni-bridge-config"' in page.text
    assert with_key.status_code == 200 and data_of(with_key) == []
    assert without.status_code == 401
    assert "BRIDGE_SERVICE_KEYS" in caplog.text  # the hint is logged ...
    assert dev_key not in caplog.text  # ... the key never
    assert dev_key not in repr(service) + repr(service.keys)


async def test_with_keys_the_page_carries_no_key(served: Served, tmp_path: Path) -> None:
    settings = service_settings(served, tmp_path, None)
    async with serve_asgi(create_app(settings)) as url:
        async with httpx2.AsyncClient(base_url=url) as client:
            page = await client.get("/")
    assert '"devKey": null' in page.text and KEY not in page.text


async def test_without_keys_a_service_reachable_from_elsewhere_on_a_real_omni_refuses_to_start(
    served: Served, tmp_path: Path
) -> None:
    settings = service_settings(served, tmp_path, None, bridge_service_keys=None)
    for host in ("0.0.0.0", "192.168.1.10", None):
        with pytest.raises(ConfigError, match="BRIDGE_SERVICE_KEYS"):
            Service(settings, host=host)
    # The embedded sandbox has nothing to protect: a development key there, whatever the host.
    sandboxed = Service(service_settings(served, tmp_path, None, bridge_service_keys=None, omni_base_url=None))
    assert sandboxed.dev_key is not None
    await sandboxed.aclose()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("acme", "entry 1 is not `name:key`"),
        ("acme:short", "shorter than 16"),
        (":" + KEY, "entry 1 is not `name:key`"),
        (f"acme:{KEY},globex:{KEY}", "have the same key"),
        (" , ", "no `name:key` pair"),
    ],
)
def test_a_bad_key_list_names_the_setting_and_never_a_key(value: str, says: str) -> None:
    with pytest.raises(ConfigError, match="BRIDGE_SERVICE_KEYS") as raised:
        ServiceKeys.parse(value)
    assert says in str(raised.value) and KEY not in str(raised.value)


def test_keys_name_their_tenant_and_hide_the_key() -> None:
    keys = ServiceKeys.parse(f"acme:{KEY}, globex:{KEY[::-1]}")
    assert keys.tenant_of(KEY) == "acme" and keys.tenant_of(KEY[::-1]) == "globex"
    assert keys.tenant_of(KEY + "x") is None and keys.tenant_of("") is None
    assert keys.tenants == ["acme", "globex"] and KEY not in repr(keys)


def test_the_store_url_picks_the_backend_and_never_shows_a_password(served: Served, tmp_path: Path) -> None:
    def where(url: str | None) -> str:
        return str(store_location(service_settings(served, tmp_path, None, bridge_store_url=url)))

    assert where(None) == f"SQLite {tmp_path / STORE_FILE}"  # the one store file of BRIDGE_DATA_DIR (was service.db)
    assert where("sqlite:////var/lib/bridge/s.db") == "SQLite /var/lib/bridge/s.db"
    assert where(str(tmp_path / "x.db")) == f"SQLite {tmp_path / 'x.db'}"
    assert where("postgresql://bridge:s3cret@db.internal:5432/bridge?sslmode=require") == (
        "PostgreSQL db.internal:5432/bridge"
    )
    with pytest.raises(ConfigError, match="BRIDGE_STORE_URL") as raised:
        where("mysql://bridge:s3cret@db/bridge")
    assert "s3cret" not in str(raised.value)
    with pytest.raises(ConfigError, match="BRIDGE_STORE_URL"):
        where("sqlite://relative.db")


def test_a_store_that_cannot_be_opened_stops_the_service_before_it_serves(served: Served, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    settings = service_settings(served, tmp_path, None, bridge_store_url=str(blocker / "service.db"))
    with pytest.raises(ConfigError, match="BRIDGE_STORE_URL"):
        Service(settings)


def test_the_package_exports_its_public_names_once() -> None:
    for name in server.__all__:  # the service's parts load on first use
        getattr(server, name)
    public = {name for name in vars(server) if not name.startswith("_")} - {"TYPE_CHECKING"}
    assert set(server.__all__) == public
    assert server.__all__ == sorted(server.__all__)
