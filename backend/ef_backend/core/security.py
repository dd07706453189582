"""Who is calling: the client address, whether it may use the admin API, and its API key name.

The client address is the TCP peer, unless the peer is a trusted proxy (`EF_TRUSTED_PROXIES`):
then it is the rightmost X-Forwarded-For hop that is not itself a trusted proxy. Hops to the left
of that were written by the client and prove nothing, so a spoofed header from an untrusted peer
changes nothing.

API keys (`EF_API_KEYS=name:key,...`) are bearer tokens. With none configured the API is open;
with some, ``/api/v1/speech``, ``/api/v1/jobs*`` and ``/v1/*`` need one, while voices, health,
metrics, the web UI files and the admin API (guarded by EF_ADMIN_CIDRS instead) stay open. Only
the key's name ever reaches logs and metrics.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ef_backend.core.errors import Forbidden, Unauthorized

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The caller's name when no API key was presented.
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Caller:
    """The identity of one request: its client address and, if it sent a valid key, the key name."""

    address: str
    key_name: str | None = None
    presented_key: bool = False

    @property
    def name(self) -> str:
        """What logs, metrics and jobs record: the key name, never the key."""
        return self.key_name or ANONYMOUS


def _parse(address: str | None) -> Address | None:
    if not address:
        return None
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket arrives as ::ffff:a.b.c.d.
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def in_networks(address: str | None, networks: Iterable[Network]) -> bool:
    """True when ``address`` is a valid IP inside one of ``networks``."""
    parsed = _parse(address)
    if parsed is None:
        return False
    return any(parsed.version == net.version and parsed in net for net in networks)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Iterable[Network]
) -> str:
    """The client's address, trusting X-Forwarded-For only as far as trusted proxies wrote it."""
    trusted = list(trusted_proxies)
    peer_address = _parse(peer)
    current = str(peer_address) if peer_address is not None else (peer or "unknown")
    if not forwarded_for or not in_networks(current, trusted):
        return current
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        parsed = _parse(hop)
        if parsed is None:
            # A garbled hop: stop at the last proxy we trust rather than believe it.
            return current
        current = str(parsed)
        if not in_networks(current, trusted):
            return current
    return current


def is_admin(address: str, admin_cidrs: Iterable[Network]) -> bool:
    return in_networks(address, admin_cidrs)


def require_admin(address: str, admin_cidrs: Iterable[Network]) -> None:
    """Raise `Forbidden` unless ``address`` is inside `EF_ADMIN_CIDRS`."""
    if not is_admin(address, admin_cidrs):
        log.warning("admin API refused for a client outside EF_ADMIN_CIDRS")
        raise Forbidden(
            f"The admin API is only open to clients in EF_ADMIN_CIDRS; {address} is not one."
        )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def key_name(token: str | None, api_keys: Mapping[str, str]) -> str | None:
    """The name of the key ``token``, compared in constant time against every configured key."""
    if token is None:
        return None
    found: str | None = None
    candidate = token.encode()
    for key, name in api_keys.items():
        if hmac.compare_digest(candidate, key.encode()):
            found = name
    return found


def identify(
    *,
    peer: str | None,
    forwarded_for: str | None,
    authorization: str | None,
    trusted_proxies: Iterable[Network],
    api_keys: Mapping[str, str],
) -> Caller:
    """Build the `Caller` of a request; raises nothing (see `require_key`)."""
    token = bearer_token(authorization)
    return Caller(
        address=client_address(peer, forwarded_for, trusted_proxies),
        key_name=key_name(token, api_keys),
        presented_key=token is not None,
    )


def require_key(caller: Caller, api_keys: Mapping[str, str]) -> None:
    """Raise `Unauthorized` when keys are configured and the caller has no valid one."""
    if not api_keys or caller.key_name is not None:
        return
    if caller.presented_key:
        log.warning("request with an invalid API key refused")
        raise Unauthorized(
            "Invalid API key; send one of EF_API_KEYS as 'Authorization: Bearer <key>'."
        )
    raise Unauthorized("API key required; send 'Authorization: Bearer <key>' (one of EF_API_KEYS).")


__all__ = [
    "ANONYMOUS",
    "Caller",
    "bearer_token",
    "client_address",
    "identify",
    "in_networks",
    "is_admin",
    "key_name",
    "require_admin",
    "require_key",
]
