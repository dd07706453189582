"""Defences against a LAN browser used as a weapon: DNS rebinding and cross-site requests.

A page on ``attacker.example`` can make a browser in the LAN send requests to EchoForge. Two
rules stop it from reaching the admin API (whose only other guard is the client's address):

* **Host allow-list** (`EF_ALLOWED_HOSTS`): a DNS-rebound request still carries the attacker's
  host name, so a request is only answered when its ``Host`` is an allowed name or an IP address
  literal (a rebinding page cannot make the browser send one).
* **Same origin** for state-changing admin requests: a browser names the page that made a
  request in ``Origin`` (and ``Sec-Fetch-Site``); it must be this site. Clients without those
  headers (curl, the CLI, scripts) are not browsers and pass.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from functools import lru_cache
from urllib.parse import urlsplit

from ef_backend.core.errors import Forbidden

log = logging.getLogger(__name__)

__all__ = ["SAFE_METHODS", "host_allowed", "host_name", "require_same_origin"]

#: Methods that change nothing, so a cross-site one cannot do harm.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def host_name(host: str) -> str:
    """The name part of a ``Host`` value: no port, no IPv6 brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


@lru_cache(maxsize=256)  # every request's Host; a handful of distinct values
def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(host: str | None, allowed: Iterable[str]) -> bool:
    """True for an allowed name (``*`` allows all, ``*.lan`` a domain) or any IP literal."""
    if not host:
        return False
    name = host_name(host)
    if not name or _is_ip(name):
        return bool(name)
    for pattern in allowed:
        if pattern == "*" or pattern == name:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


def _same_origin(origin: str, host: str) -> bool:
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    origin_host = parts.netloc.lower()
    host = host.strip().lower()
    if origin_host == host:
        return True
    # Behind nginx, Host is $host: the name without the port.
    return ":" not in host.strip("[]") and host_name(origin_host) == host_name(host)


def require_same_origin(method: str, headers: Mapping[str, str]) -> None:
    """Raise `Forbidden` for a state-changing request that a browser sent from another site."""
    if method.upper() in SAFE_METHODS:
        return
    origin = headers.get("origin")
    fetch_site = headers.get("sec-fetch-site")
    if origin is None:
        if fetch_site in (None, "same-origin", "none"):
            return
    elif fetch_site in (None, "same-origin") and _same_origin(origin, headers.get("host", "")):
        return
    log.warning("cross-site admin request refused", extra={"origin": origin})
    raise Forbidden(
        "Cross-site request refused: state-changing admin requests must come from this site's "
        "own pages or from a client that is not a browser."
    )
