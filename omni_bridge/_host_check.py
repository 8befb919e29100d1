"""Which `Host` and `Origin` values an MCP endpoint accepts: the DNS-rebinding defence of the `mcp` SDK, configured.

A page on a foreign site can make a browser send requests to a server on 127.0.0.1 (DNS rebinding); the request
then carries the foreign name in `Host` and `Origin`, and the SDK refuses it (421 for `Host`, 403 for `Origin`).
Bound to loopback, a server accepts only loopback names. Bound elsewhere, the check is off unless names are
configured (callers are admitted by their keys; the name they use to reach the server is not known here); with
names configured, only those and loopback ones are accepted, wherever the server is bound.
"""

from __future__ import annotations

from collections.abc import Sequence

from mcp.server.transport_security import TransportSecuritySettings

__all__ = ["LOOPBACK", "host_check"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")
_LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")


def host_check(bound_to: str, allowed_hosts: Sequence[str] = ()) -> TransportSecuritySettings:
    """The check for a server bound to `bound_to`; `allowed_hosts` are names (any port) or `name:port` values."""
    names = [name.strip().lower() for name in allowed_hosts if name.strip()]
    if bound_to not in LOOPBACK and not names:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = list(_LOOPBACK_HOSTS)
    for name in names:
        has_port = ":" in name.rpartition("]")[2]  # `[::1]` is a name; `[::1]:80` and `a.example:80` have ports
        # The SDK reads `name:*` as "with any port"; `name` itself matches a Host sent without one.
        hosts += [name] if has_port else [name, f"{name}:*"]
    origins = [f"{scheme}://{host}" for scheme in ("http", "https") for host in hosts]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)
