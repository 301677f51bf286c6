"""Which status callback URLs are allowed: http(s) only, and (against server-side request forgery)
only public addresses, unless an operator names private networks the callbacks may reach.

Checked twice: when a message is sent (an address literal, or `localhost`, is refused at once with a
422) and before every delivery, against every address the host name resolves to then (a name may
point anywhere, and may change). Redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

URL_MAX_CHARS = 2000
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]


def networks(cidrs: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks of the callback_private_networks setting."""
    return [ipaddress.ip_network(c, strict=False) for c in cidrs]


def url_problem(url: object, private: Networks) -> str | None:
    """What is wrong with a callback URL as given, or None if it may be used."""
    if not isinstance(url, str):
        return f"must be a URL string, not {type(url).__name__}"
    if not url or len(url) > URL_MAX_CHARS or any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return f"must be a URL of 1 to {URL_MAX_CHARS} characters without spaces or control characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises for a port out of range
    except ValueError as error:
        return f"is not a URL: {error}"
    if parts.scheme not in ("http", "https") or not host:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password"
    literal = _literal(host)
    if literal is None and host.lower().rstrip(".") in ("localhost", "localhost.localdomain"):
        literal = ipaddress.ip_address("127.0.0.1")
    if literal is not None and not address_allowed(literal, private):
        return f"{host} is not a public address (see OUTBOX_CALLBACK_PRIVATE_NETWORKS)"
    return None


def address_allowed(address: IpAddress, private: Networks) -> bool:
    """A public unicast address, or one in the networks the operator allowed."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in private):
        return True
    return address.is_global and not address.is_multicast


def resolved_problem(url: str, private: Networks) -> str | None:
    """Resolve the URL's host now; what is wrong with any address it names, or None."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80))
    except (OSError, UnicodeError) as error:
        return f"cannot resolve {host}: {error}"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address_allowed(address, private):
            return f"{host} resolves to {address}, not a public address"
    return None


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
