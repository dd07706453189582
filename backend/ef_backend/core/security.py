"""Who is calling: the client address, whether it may use the admin API, and its API key name.

The client address is the TCP peer, unless the peer is a trusted proxy (`EF_TRUSTED_PROXIES`):
then it is the rightmost X-Forwarded-For hop that is not itself a trusted proxy. Hops to the left
of that were written by the client and prove nothing, so a spoofed header from an untrusted peer
changes nothing. A request relayed by a trusted proxy is never taken for the proxy itself: without
a usable header (missing, empty, a hop that is not a bare IP address such as ``8.8.8.8:1234`` or
``[2001:db8::1]``, or only trusted hops) its client is `UNKNOWN`, which no admin CIDR contains.
The access log, the rate limiter and the admin check all read `request_client_address`.

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
from functools import lru_cache
from typing import Any

from ef_backend.core.errors import Forbidden, Unauthorized

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The caller's name when no API key was presented.
ANONYMOUS = "anonymous"
#: The client address of a relayed request whose X-Forwarded-For cannot be believed.
UNKNOWN = "unknown"


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


@lru_cache(maxsize=4096)  # parsed on every request; addresses repeat, the cache is bounded
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
    if peer_address is None:
        return UNKNOWN
    if not in_networks(str(peer_address), trusted):
        return str(peer_address)
    hops = [_parse(hop) for hop in (forwarded_for or "").split(",")]
    if any(hop is None for hop in hops):
        # Missing, empty or garbled: whoever is behind the proxy is not known.
        return UNKNOWN
    for hop in reversed(hops):
        if not in_networks(str(hop), trusted):
            return str(hop)
    return UNKNOWN


def request_client_address(scope: Mapping[str, Any], trusted_proxies: Iterable[Network]) -> str:
    """`client_address` of an ASGI request: its peer and every X-Forwarded-For header, in order."""
    client = scope.get("client")
    peer = str(client[0]) if client else None
    headers = scope.get("headers", ())
    values = [bytes(v).decode("latin-1") for k, v in headers if k == b"x-forwarded-for"]
    return client_address(peer, ",".join(values) if values else None, trusted_proxies)


def is_admin(address: str, admin_cidrs: Iterable[Network]) -> bool:
    return in_networks(address, admin_cidrs)


def require_admin(address: str, admin_cidrs: Iterable[Network]) -> None:
    """Raise `Forbidden` unless ``address`` is inside `EF_ADMIN_CIDRS`."""
    if not is_admin(address, admin_cidrs):
        # The address goes to the log (the operator's), never into the answer.
        log.warning("admin API refused for a client outside EF_ADMIN_CIDRS: %s", address)
        raise Forbidden("The admin API is only open to clients in EF_ADMIN_CIDRS.")


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


def identify(*, address: str, authorization: str | None, api_keys: Mapping[str, str]) -> Caller:
    """Build the `Caller` of a request from its resolved address; raises nothing."""
    token = bearer_token(authorization)
    return Caller(
        address=address, key_name=key_name(token, api_keys), presented_key=token is not None
    )


def require_admin_token(authorization: str | None, admin_token: str | None) -> None:
    """With EF_ADMIN_TOKEN set, the admin API also needs ``Authorization: Bearer <token>``."""
    if admin_token is None:
        return
    token = bearer_token(authorization)
    if token is None or not hmac.compare_digest(token.encode(), admin_token.encode()):
        log.warning("admin API refused: missing or wrong EF_ADMIN_TOKEN")
        raise Unauthorized(
            "The admin API needs 'Authorization: Bearer <token>' with EF_ADMIN_TOKEN."
        )


def rate_limit_bucket(caller: Caller) -> str:
    """The caller's rate-limit bucket: its key name, else its IPv4 address or IPv6 /64.

    One IPv6 host usually holds a whole /64, so per-address buckets would be no limit at all.
    """
    if caller.key_name is not None:
        return f"key:{caller.key_name}"
    parsed = _parse(caller.address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return f"addr:{ipaddress.ip_network((parsed, 64), strict=False)}"
    return f"addr:{caller.address}"


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
    "UNKNOWN",
    "Caller",
    "bearer_token",
    "client_address",
    "identify",
    "in_networks",
    "is_admin",
    "key_name",
    "rate_limit_bucket",
    "request_client_address",
    "require_admin",
    "require_admin_token",
    "require_key",
]
