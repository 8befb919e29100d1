"""`omni-bridge doctor`: print the effective settings and each tenant's mode at Omni, then check Omni's REST API
and, for a named user, MCP.

The checks go through `OmniConnection`, as every command does: the configured Omni (or the sandbox it starts),
its REST client, identity resolver and session pool. Omni's tools are listed for one end user, never for the
key's owner, so MCP is checked only for a user named with `--user`; without one, that check is skipped and
the command says how to run it. Nothing is retried: the doctor reports what it sees at once.

It says which auth strategy acts for end users (`OMNI_AUTH`: the org key plus `X-MCP-User-ID`, or per-user embed
MCP tokens), never the key or the embed secret.

Each service key's tenant is listed with how its end users map to Omni (`BRIDGE_TENANTS`: its own namespace,
one shared with another tenant, or plain external ids) and whether it may upsert profiles; the keys themselves
are never printed. A tenant policy `serve` would refuse fails the doctor too.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from omni_bridge.cli.options import examples
from omni_bridge.exceptions import ConfigError, IdentityError, OmniError, OmniHTTPError

if TYPE_CHECKING:
    from omni_bridge.agent import OmniConnection
    from omni_bridge.cli.options import Commands
    from omni_bridge.config import Settings

__all__ = ["add_command", "run"]


def add_command(commands: Commands) -> None:
    """Register `doctor` on the `omni-bridge` parser."""
    doctor = commands.add_parser(
        "doctor",
        help="print the effective settings and check that Omni answers",
        description="Print the configuration (secrets hidden) and check Omni's REST API with the key. With "
        "--user, also find that end user in Omni and list the MCP tools they get, acting for them as every "
        "command does; without it MCP is not checked, since the bridge never calls Omni's tools as the key's owner.",
        epilog=examples(
            "omni-bridge doctor                 # settings, and OMNI_BASE_URL's REST API",
            "omni-bridge doctor -u cust-42      # ... and cust-42's MCP tools",
            "omni-bridge doctor -s -u alice     # the in-process sandbox, as alice",
        ),
    )
    doctor.add_argument(
        "-s", "--sandbox", action="store_true", help="check an in-process sandbox instead of OMNI_BASE_URL"
    )
    doctor.add_argument(
        "-u",
        "--user",
        metavar="USER",
        help="check MCP as this end user (their Omni external id as is, e.g. acme/cust-42 for a namespaced "
        "tenant's user; resolved through Omni like in chat and ask)",
    )
    doctor.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """0 when every check passed, 1 when one failed or Omni cannot be reached."""
    from omni_bridge.config import load_settings

    return asyncio.run(_doctor(load_settings(), sandbox=args.sandbox, user=args.user))


async def _doctor(settings: Settings, *, sandbox: bool, user: str | None) -> int:
    from omni_bridge.agent import OmniConnection  # the MCP client and the sandbox: loaded to run only

    print("Effective configuration (secrets hidden):")
    for name, value in settings.describe():
        print(f"  {name:<28} {value}")
    print(f"  {'(engine that answers)':<28} {settings.effective_engine()}")
    print()
    tenants_ok = _tenants(settings)
    print()
    async with OmniConnection.from_settings(settings, sandbox=sandbox, max_retries=0) as omni:
        where = "embedded sandbox " + omni.base_url if omni.sandbox else omni.base_url
        print(f"Checking Omni at {where}")
        print(f"  · auth: {_auth_line(omni)}")
        ok = await _check_rest(omni)
        if ok is None:
            return 1
        if user is None:
            _skipped_mcp(omni, sandbox=sandbox)
        else:
            ok = await _check_user(omni, user) and ok
    ok = ok and tenants_ok
    print("All checks passed." if ok else "Some checks failed.")
    return 0 if ok else 1


def _auth_line(omni: OmniConnection) -> str:
    """Which auth strategy acts for end users (never the key or the secret)."""
    if omni.auth == "embed_token":
        return (
            f"embed_token: a per-user embed MCP token minted at {omni.base_url}/oauth/token from the embed "
            "secret (hidden), sent as the bearer with no X-MCP-User-ID"
        )
    return "org_key: the organization API key (hidden) plus X-MCP-User-ID and X-MCP-User-Required: true"


def _tenants(settings: Settings) -> bool:
    """Print each tenant's mode at Omni (never a key); False when the keys or `BRIDGE_TENANTS` would be refused."""
    from omni_bridge.server import TenantPolicy

    print("Tenants (service keys hidden): how each one's end users map to Omni users")
    if settings.bridge_service_keys is None:
        print("  (no BRIDGE_SERVICE_KEYS: `serve` makes a development key where it may, for this one tenant)")
    try:
        policy = TenantPolicy.from_settings(settings)
    except ConfigError as exc:
        print(f"  ✗ {exc}")
        return False
    for mode in policy.modes:
        print(f"  · {mode.describe()}")
    return True


async def _check_rest(omni: OmniConnection) -> bool | None:
    """The key against Omni's REST API (its models); `None` when Omni cannot be reached at all."""
    try:
        models = await omni.rest.list_models()
    except OmniHTTPError as exc:
        print(f"  ✗ REST: {exc}")
        return False
    except OmniError as exc:
        print(f"  ✗ REST: cannot reach {omni.base_url}: {exc}")
        return None
    print(f"  ✓ REST: key accepted, {len(models)} model(s): " + ", ".join(m.name or m.id for m in models))
    return True


def _skipped_mcp(omni: OmniConnection, *, sandbox: bool) -> None:
    """Say that MCP was not checked, and how to check it as one end user (naming the sandbox's users)."""
    users = [u.external_id for u in omni.sandbox.directory.embed_users() if u.external_id] if omni.sandbox else []
    example = f" (on the sandbox: {', '.join(users)})" if users else ""
    print("  · MCP: not checked: Omni's tools are listed for one end user, never for the key's owner")
    again = "omni-bridge doctor --sandbox" if sandbox else "omni-bridge doctor"
    print(f"    check them as one: {again} --user <external id>{example}")


async def _check_user(omni: OmniConnection, user: str) -> bool:
    """The end user `user` (an external id) resolved through Omni, then their MCP tools, as they see them."""
    try:
        identity = await omni.resolve(user)
    except (IdentityError, OmniError) as exc:
        print(f"  ✗ user {user!r}: {exc}")
        return False
    named = f" ({identity.display_name})" if identity.display_name else ""
    print(f"  ✓ user {user!r}{named} is Omni user {identity.user_id}")
    try:
        tools = await omni.pool.list_tools(omni.session_key(identity))
    except OmniError as exc:
        print(f"  ✗ MCP as {user!r}: {omni.mcp_url}: {exc}")
        return False
    print(f"  ✓ MCP as {user!r}: {len(tools)} tool(s): {', '.join(tool.name for tool in tools)}")
    return True
