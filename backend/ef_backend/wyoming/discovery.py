"""Zeroconf (mDNS) announcement of the Wyoming listener, so Home Assistant discovers it.

Home Assistant's Wyoming integration browses ``_wyoming._tcp.local.``; a service found there is
offered under Settings -> Devices & services -> Discovered. The announcement names one address:
EF_WYOMING_ZEROCONF_ADDRESS, else EF_WYOMING_HOST, else (listening on every address) the one
this host uses towards the mDNS group, like wyoming-piper. mDNS is sent only on that address's
interface. With several backend workers only one announces (whoever holds a lock file in
EF_DATA_DIR), since they all share one port.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import logging
import os
import socket
from pathlib import Path

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

__all__ = ["SERVICE_TYPE", "Announcement", "announced_address"]

log = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."
_MDNS_GROUP = "224.0.0.251"


def announced_address(configured: str, host: str) -> str:
    """The address to announce: ``configured``, else ``host`` unless it is a wildcard."""
    if configured:
        return configured
    try:
        if not ipaddress.ip_address(host or "0.0.0.0").is_unspecified:  # noqa: S104 - a check
            return host
    except ValueError:
        return socket.gethostbyname(host)  # a host name: announce its address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((_MDNS_GROUP, 1))  # no packet is sent: this only picks the route
        return str(probe.getsockname()[0])


class Announcement:
    """``name._wyoming._tcp.local.`` at ``address``:``port`` while started."""

    def __init__(self, *, name: str, address: str, port: int, lock_path: Path) -> None:
        self.name = name
        self.address = address
        self.port = port
        self.lock_path = lock_path
        self.registered = False
        self._zeroconf: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None
        self._lock_fd: int | None = None

    def _take_lock(self) -> bool:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    async def start(self) -> None:
        """Register the service (mDNS probing takes about a second); failures only log."""
        if not self._take_lock():
            log.info("zeroconf: another worker announces the Wyoming service")
            return
        ip = ipaddress.ip_address(self.address)
        version = IPVersion.V4Only if ip.version == 4 else IPVersion.V6Only
        try:
            self._zeroconf = AsyncZeroconf(interfaces=[self.address], ip_version=version)
            self._info = AsyncServiceInfo(
                SERVICE_TYPE,
                f"{self.name}.{SERVICE_TYPE}",
                addresses=[ip.packed],
                port=self.port,
                server=f"{self.name}.local.",
            )
            await (await self._zeroconf.async_register_service(self._info))
        except Exception as exc:
            log.error(
                "zeroconf: cannot announce the Wyoming service",
                extra={"error": f"{type(exc).__name__}: {exc}", "address": self.address},
            )
            await self.stop()
            return
        self.registered = True
        log.info(
            "zeroconf: Wyoming service announced",
            extra={"service": f"{self.name}.{SERVICE_TYPE}", "address": self.address},
        )

    async def stop(self) -> None:
        """Say goodbye (mDNS) and release the lock."""
        if self._zeroconf is not None:
            with contextlib.suppress(Exception):
                if self.registered and self._info is not None:
                    await self._zeroconf.async_unregister_service(self._info)
                await self._zeroconf.async_close()
            self._zeroconf = None
        self.registered = False
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
