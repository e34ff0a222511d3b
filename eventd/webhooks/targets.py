"""Where a webhook may be sent: the guard against server-side request forgery.

A webhook's URL is chosen by whoever holds an admin token, and the daemon
itself makes the request, from inside its network. So a target must be
``http`` or ``https`` with a host name or address, no user name or password,
and every address the name resolves to must be a public one: loopback,
private (RFC 1918, unique-local), link-local (where cloud metadata services
listen), multicast, shared (carrier-grade NAT), unspecified and reserved
addresses are refused, IPv4 written inside IPv6 included —
unless ``webhooks.allow_private_targets`` is set (a receiver on this machine
or this network, tests).

The check runs when an endpoint is created or its URL changed (a refusal is
``400``) and again before every delivery, since a name can resolve elsewhere
later; the delivery then connects to the very address that was checked, so
the name is not looked up twice.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.parse
from dataclasses import dataclass

import trio

RESOLVE_TIMEOUT_SECONDS = 5.0
SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
_NUMERIC_LABEL = re.compile(r"[0-9]*|0x[0-9a-f]*", re.IGNORECASE)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(Exception):
    """The URL is not one a webhook may be sent to; the message says why."""


@dataclass(frozen=True)
class Target:
    """A URL taken apart, and the addresses it may be sent to, in the resolver's order."""

    scheme: str
    host: str  # as written, without brackets
    port: int
    addresses: tuple[IPAddress, ...]


def parse(url: str) -> tuple[str, str, int]:
    """The scheme, host and port of ``url``; :class:`TargetRefused` if it is no webhook URL."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise TargetRefused("must be an http:// or https:// URL")
    if not parts.hostname:
        raise TargetRefused("must name a host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("must not carry a user name or password")
    if parts.fragment:
        raise TargetRefused("must not have a #fragment")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise TargetRefused("must not contain white space or control characters")
    if not _is_ip_literal(parts.hostname) and _NUMERIC_LABEL.fullmatch(
        parts.hostname.rstrip(".").rpartition(".")[2]
    ):
        # "1.1", "2130706433", "0x7f.1": numbers a resolver reads as an address (127.0.0.1
        # for the last two), not names. A top-level domain is never a number.
        raise TargetRefused("must name a host, or an IP address written in full")
    return scheme, parts.hostname, port if port is not None else DEFAULT_PORTS[scheme]


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def refusal(address: IPAddress) -> str | None:
    """Why a webhook may not go to ``address``, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return refusal(embedded)
    for kind, found in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if found:
            return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} address"
    if not address.is_global:  # shared (100.64/10), documentation, benchmarking …
        return "not a public address"
    return None


async def check(url: str, *, allow_private: bool) -> Target:
    """``url`` as a :class:`Target`, its name resolved and every address checked.

    Raises :class:`TargetRefused` for a URL that is not http(s), a name that
    does not resolve (in :data:`RESOLVE_TIMEOUT_SECONDS`), and — unless
    ``allow_private`` — any address of the name that is not public.
    """
    scheme, host, port = parse(url)
    addresses = await _resolve(host, port)
    if not allow_private:
        for address in addresses:
            why = refusal(address)
            if why is not None:
                where = f"{host} is" if str(address) == host else f"{host} resolves to {address},"
                raise TargetRefused(
                    f"{where} {why}; webhooks go only to public addresses"
                    " (unless webhooks.allow_private_targets is set)"
                )
    return Target(scheme, host, port, addresses)


async def _resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    try:
        return (ipaddress.ip_address(host),)
    except ValueError:
        pass
    found: list[IPAddress] = []
    with trio.move_on_after(RESOLVE_TIMEOUT_SECONDS):
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            infos = []
        for _family, _type, _proto, _name, sockaddr in infos:
            # An IPv6 scope ("fe80::1%eth0") is no part of the address.
            address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
            if address not in found:
                found.append(address)
        if not found:
            raise TargetRefused(f"{host} does not resolve to an address")
        return tuple(found)
    raise TargetRefused(f"{host} did not resolve in {RESOLVE_TIMEOUT_SECONDS:g} s")
