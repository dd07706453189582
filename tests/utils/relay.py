"""A TCP relay whose connections to the server leave from another loopback address.

Chromium always connects from 127.0.0.1; through this relay the server sees the browser as
``source`` (e.g. 127.0.0.2), a different machine for EF_ADMIN_CIDRS. Plain sockets and
threads: a few connections of a test, nothing more.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class Relay:
    """Listens on 127.0.0.1 (a free port) and forwards each connection to ``target_port``."""

    def __init__(self, target_port: int, *, source: str = "127.0.0.2") -> None:
        self.target_port = target_port
        self.source = source
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(
                ("127.0.0.1", self.target_port), source_address=(self.source, 0)
            )
            self._open += [client, upstream]
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()

    def close(self) -> None:
        self._listener.close()
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)
