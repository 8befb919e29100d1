"""Which IP addresses a webhook may go to: public ones, with IPv6 addresses judged by any IPv4 they carry.

Several IPv6 forms carry an IPv4 address, and some of them reach it: `::ffff:127.0.0.1` *is* 127.0.0.1 on a
dual-stack socket, a NAT64 translator turns `64:ff9b::a9fe:a9fe` into 169.254.169.254, and a 6to4 relay sends
`2002:7f00:1::` to 127.0.0.1. Python's `is_private`/`is_global` do not look inside them (and their verdicts on
these prefixes differ between Python versions), so a check that only asks them lets such addresses through.

The rule (`refusal`):

1. An IPv4 address, or an IPv6 address that carries none: refused when loopback, unspecified, link-local,
   multicast, private, reserved or otherwise not global.
2. An IPv6 address of a carrying form is refused when any IPv4 address it carries would be (rule 1). The forms:
   IPv4-mapped `::ffff:0:0/96`, NAT64 `64:ff9b::/96` (RFC 6052, the IPv4 in the last 32 bits), 6to4 `2002::/16`
   (the IPv4 in bits 16-48), Teredo `2001::/32` (server in bits 32-64, client in the last 32 bits XOR
   0xffffffff), IPv4-compatible `::a.b.c.d` (`::/96` but `::` and `::1`) and IPv4-translated `::ffff:0:a.b.c.d`.
3. When what it carries is public: IPv4-mapped, NAT64 and 6to4 addresses are public too (they lead to that
   public host, and an IPv6-only host behind DNS64 sees every IPv4-only receiver as `64:ff9b::…`). Teredo,
   IPv4-compatible and IPv4-translated addresses, and the local-use NAT64 prefix `64:ff9b:1::/48` (whose layout
   is local, so what it carries cannot be read), are refused whatever they carry: deprecated, or never a
   public receiver's only address.

An operator can still allow any of them with `BRIDGE_WEBHOOK_ALLOW`; an IPv4 entry also allows that address's
IPv4-mapped form, which is the same socket destination (`same_destination`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["IPAddress", "refusal", "same_destination"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_V4 = ipaddress.IPv4Address
_V6 = ipaddress.IPv6Address


def _last_32_bits(address: _V6) -> tuple[_V4, ...]:
    return (_V4(int(address) & 0xFFFF_FFFF),)


@dataclass(frozen=True, slots=True)
class _Form:
    name: str
    """As in a message: "a 6to4 address carrying 127.0.0.1, a loopback address"."""
    network: ipaddress.IPv6Network
    carried: Callable[[_V6], tuple[_V4, ...]]
    reaches: bool
    """A public carried address makes the IPv6 address public (rule 3); `False`: refused whatever it carries."""


_FORMS = (
    _Form("an IPv4-mapped", ipaddress.IPv6Network("::ffff:0:0/96"), _last_32_bits, reaches=True),
    _Form("a NAT64", ipaddress.IPv6Network("64:ff9b::/96"), _last_32_bits, reaches=True),
    _Form("a 6to4", ipaddress.IPv6Network("2002::/16"), lambda a: (a.sixtofour,) if a.sixtofour else (), reaches=True),
    _Form("a Teredo", ipaddress.IPv6Network("2001::/32"), lambda a: a.teredo or (), reaches=False),
    _Form("a local-use NAT64", ipaddress.IPv6Network("64:ff9b:1::/48"), lambda a: (), reaches=False),
    _Form("an IPv4-translated", ipaddress.IPv6Network("::ffff:0:0:0/96"), _last_32_bits, reaches=False),
    _Form("an IPv4-compatible", ipaddress.IPv6Network("::/96"), _last_32_bits, reaches=False),
)
_OWN_CASES = (_V6("::"), _V6("::1"))
"""In `::/96` but not IPv4-compatible: the unspecified and the loopback address, refused as such."""


def _form_of(address: _V6) -> _Form | None:
    if address in _OWN_CASES:
        return None
    return next((form for form in _FORMS if address in form.network), None)


def _plain_refusal(address: IPAddress) -> str | None:
    checks = (
        ("a loopback", address.is_loopback),
        ("an unspecified", address.is_unspecified),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("a private", address.is_private),
        ("a reserved", address.is_reserved),
        ("a non-public", not address.is_global),  # e.g. 100.64.0.0/10, shared by carriers
    )
    return next((f"{kind} address" for kind, hit in checks if hit), None)


def refusal(address: IPAddress) -> str | None:
    """Why `address` is not a public destination for a webhook (`None` when it is), per the module's rule."""
    if isinstance(address, _V4):
        return _plain_refusal(address)
    form = _form_of(address)
    if form is None:
        return _plain_refusal(address)
    for carried in form.carried(address):
        why = _plain_refusal(carried)
        if why is not None:
            return f"{form.name} address carrying {carried}, {why}"
    return None if form.reaches else f"{form.name} address"


def same_destination(address: IPAddress) -> tuple[IPAddress, ...]:
    """`address`, and the IPv4 address it is on a dual-stack socket when it is IPv4-mapped (for the allow-list)."""
    if isinstance(address, _V6) and address.ipv4_mapped is not None:
        return (address, address.ipv4_mapped)
    return (address,)
