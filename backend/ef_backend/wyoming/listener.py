"""The Wyoming TCP listener: a task of the backend process, on the backend's speech service.

Why a task and not a process of its own: a Wyoming request must use the same cache, queue and
engine state as HTTP, and in this process it does so directly (in-process wake-ups when a job
finishes, the cached voice list, one metrics registry and tracer); another process would need
its own database engine, voice cache and metrics endpoint, and another container to run and
watch. With ``EF_WORKERS > 1`` every worker listens on the same port (``SO_REUSEPORT``: the
kernel spreads connections), writes its metrics to the multiprocess files like HTTP does, and
only one worker announces the service over zeroconf.

Access: Wyoming has no authentication, so a connection from outside EF_WYOMING_CIDRS (default:
the EF_ADMIN_CIDRS networks) gets one ``error`` event (code ``forbidden``) and is closed.

If the port cannot be bound (another program holds it) the backend still serves HTTP: the
listener retries every `REBIND_S` seconds, ``ef_wyoming_listener_up`` is 0 and ``/health``
reports the ``wyoming`` check as degraded (alert EFWyomingListenerDown).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
from dataclasses import dataclass

from wyoming.error import Error
from wyoming.event import async_write_event

from ef_backend.core.config import Settings
from ef_backend.observability import metrics
from ef_backend.services.speech import SpeechService
from ef_backend.wyoming.discovery import Announcement, announced_address
from ef_backend.wyoming.handler import SpeechHandler

__all__ = ["REBIND_S", "ListenerHealth", "WyomingListener"]

log = logging.getLogger(__name__)

#: How often a listener that could not bind its port tries again.
REBIND_S = 10.0
#: How long open connections get at shutdown before they are cut.
STOP_GRACE_S = 5.0


@dataclass(frozen=True)
class ListenerHealth:
    """What ``/health`` reports: listening or not (and why), where, how busy."""

    listening: bool
    address: str
    connections: int
    announced: bool
    error: str | None


def _peer_address(peer: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not isinstance(peer, tuple) or not peer:
        return None
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class WyomingListener:
    """Accepts Wyoming clients on EF_WYOMING_HOST:EF_WYOMING_PORT and serves each one."""

    def __init__(self, settings: Settings, speech: SpeechService) -> None:
        self.settings = settings
        self.speech = speech
        self.address = f"{settings.wyoming_host}:{settings.wyoming_port}"
        self.allowed = settings.wyoming_allowed
        self._server: asyncio.AbstractServer | None = None
        self._error: str | None = None
        self._rebind: asyncio.Task[None] | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._announcement: Announcement | None = None
        self._announcing: asyncio.Task[None] | None = None
        self._up = metrics.wyoming_listener_up.labels(self.address)

    async def start(self) -> None:
        """Bind (or keep trying in the background) and announce when EF_WYOMING_ZEROCONF."""
        if not await self._bind():
            self._rebind = asyncio.create_task(self._rebind_loop(), name="ef-wyoming-rebind")

    async def _bind(self) -> bool:
        try:
            self._server = await asyncio.start_server(
                self._serve,
                self.settings.wyoming_host,
                self.settings.wyoming_port,
                reuse_port=self.settings.workers > 1 or None,
            )
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            self._error = f"cannot listen on {self.address}: {why}"
            self._up.set(0)
            log.error("wyoming listener down", extra={"address": self.address, "error": str(exc)})
            return False
        self._error = None
        self._up.set(1)
        log.info(
            "wyoming listener started",
            extra={"address": self.address, "allowed": [str(n) for n in self.allowed]},
        )
        if self.settings.wyoming_zeroconf:
            # mDNS probing takes a second or two: the backend does not wait for it.
            self._announcing = asyncio.create_task(self._announce(), name="ef-wyoming-zeroconf")
        return True

    async def _rebind_loop(self) -> None:
        while True:
            await asyncio.sleep(REBIND_S)
            if await self._bind():
                return

    async def _announce(self) -> None:
        settings = self.settings
        try:
            address = announced_address(settings.wyoming_zeroconf_address, settings.wyoming_host)
        except OSError as exc:
            log.error("zeroconf: no address to announce", extra={"error": str(exc)})
            return
        self._announcement = Announcement(
            name=settings.wyoming_zeroconf_name,
            address=address,
            port=settings.wyoming_port,
            lock_path=settings.data_dir / "wyoming-zeroconf.lock",
        )
        await self._announcement.start()

    async def stop(self) -> None:
        """Stop accepting, withdraw the announcement, give open connections a moment, close."""
        for task in (self._rebind, self._announcing):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._announcement is not None:
            await self._announcement.stop()
        if self._server is not None:
            self._server.close()
        if self._clients:
            _, pending = await asyncio.wait(self._clients, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def health(self) -> ListenerHealth:
        return ListenerHealth(
            listening=self._server is not None and self._server.is_serving(),
            address=self.address,
            connections=len(self._clients),
            announced=self._announcement is not None and self._announcement.registered,
            error=self._error,
        )

    def allows(self, peer: object) -> bool:
        """Is the client's address in EF_WYOMING_CIDRS?"""
        address = _peer_address(peer)
        return address is not None and any(address in network for network in self.allowed)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        shown = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self.allows(peer):
            metrics.wyoming_connections_total.labels("refused").inc()
            log.warning("wyoming connection refused", extra={"peer": shown})
            with contextlib.suppress(OSError):
                refusal = Error(
                    text=f"Connections from {shown} are not allowed (EF_WYOMING_CIDRS).",
                    code="forbidden",
                )
                await async_write_event(refusal.event(), writer)
                writer.close()
                await writer.wait_closed()
            return
        metrics.wyoming_connections_total.labels("accepted").inc()
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        metrics.wyoming_connections_active.inc()
        handler = SpeechHandler(
            reader, writer, speech=self.speech, version=self.settings.version, peer=shown
        )
        try:
            await handler.run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away mid-event
        finally:
            metrics.wyoming_connections_active.dec()
            self._clients.discard(task)
