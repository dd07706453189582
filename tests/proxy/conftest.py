"""ef_proxy fixtures: the real nginx with the real templates, in front of a real backend (on the
Piper ef_tts) and the frontend's static server, all on loopback; and a second nginx in front of
a scripted upstream for what a real backend cannot be made to do on cue (stall, trickle).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.proxy.nginx import start_proxy
from tests.utils.procs import Server, free_port, start_ef_backend

#: The one address allowed to use /api/admin in these tests (EF_ADMIN_CIDRS of proxy and backend).
ADMIN_CLIENT = "127.0.0.2"
OTHER_CLIENT = "127.0.0.3"
#: EF_ALLOWED_HOSTS of proxy and backend (IP literals are always allowed).
HOSTS = "echoforge.test,localhost"
ACCEL_PREFIX = "/_ef_cache/"


@dataclass
class Stack:
    proxy: Server
    backend: Server
    http: str
    https: str
    ca: Path
    cache_dir: Path


def _self_signed(out: Path) -> tuple[Path, Path]:
    cert, key = out / "tls.crt", out / "tls.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=echoforge.test",
            "-addext", "subjectAltName=DNS:echoforge.test,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="session")
def stack(piper_tts: Server, session_tmp: Path) -> Iterator[Stack]:
    """ef_proxy (HTTP and TLS) -> ef_backend (X-Accel-Redirect on) and the frontend."""
    root = session_tmp / "proxy-stack"
    data = root / "data"
    data.mkdir(parents=True)
    admin = f"{ADMIN_CLIENT}/32"
    backend = start_ef_backend(
        "ef_backend-proxied",
        root / "logs",
        data_dir=data,
        tts_url=piper_tts.url,
        env={
            "EF_RATE_LIMIT": "0",
            "EF_ADMIN_CIDRS": admin,
            "EF_TRUSTED_PROXIES": "127.0.0.1/32",
            "EF_ACCEL_REDIRECT_PREFIX": ACCEL_PREFIX,
            "EF_ALLOWED_HOSTS": HOSTS,
        },
    )
    proxy: Server | None = None
    try:
        backend.wait_ready("/health/ready", timeout=60)
        cert, key = _self_signed(root)
        proxy, ports = start_proxy(
            root / "nginx",
            {
                "EF_BACKEND_UPSTREAM": f"127.0.0.1:{backend.port}",
                "EF_FRONTEND_UPSTREAM": f"127.0.0.1:{(frontend_port := free_port())}",
                "EF_ADMIN_CIDRS": admin,
                "EF_ALLOWED_HOSTS": HOSTS,
                "EF_PROXY_CACHE_DIR": str(data / "audio-cache"),
                "EF_PROXY_TLS_CERT": str(cert),
                "EF_PROXY_TLS_KEY": str(key),
            },
            frontend_port=frontend_port,
        )
        proxy.wait_ready("/health/ready", timeout=30)
        yield Stack(
            proxy=proxy,
            backend=backend,
            http=f"http://127.0.0.1:{ports['http']}",
            https=f"https://localhost:{ports['tls']}",
            ca=cert,
            cache_dir=data / "audio-cache",
        )
    finally:
        if proxy is not None:
            proxy.stop()
        backend.stop()


#: What the flooding upstream offers: far more than socket buffers and nginx's own buffers hold.
FLOOD_BYTES = 64 * 1024 * 1024


class Scripted(BaseHTTPRequestHandler):
    """An upstream that stalls (``*/stall``) or floods (``*/flood``) on cue."""

    protocol_version = "HTTP/1.1"
    flooded: list[int]
    flood_done: threading.Event

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def do_POST(self) -> None:
        self._drain()
        self.do_GET()

    def do_GET(self) -> None:
        if self.path.endswith("/stall"):
            time.sleep(5)  # longer than the proxy's read timeout in these tests
        if self.path.endswith("/flood"):
            self._flood()
            return
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _flood(self) -> None:
        """Stream chunks until FLOOD_BYTES are out or a write blocks for a second (the reader
        is not reading, and nobody in between soaks up the rest); record how much went out."""
        self.send_response(200)
        self.send_header("Content-Type", "audio/pcm")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        chunk = b"\0" * 65536
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        self.connection.settimeout(1.0)
        sent = 0
        try:
            while sent < FLOOD_BYTES:
                self.connection.sendall(frame)
                sent += len(chunk)
            self.connection.sendall(b"0\r\n\r\n")
        except OSError:  # blocked (timeout) or the proxy gave up on us
            self.close_connection = True
        self.flooded.append(sent)
        self.flood_done.set()


@dataclass
class Edge:
    proxy: Server
    url: str
    flooded: list[int]
    flood_done: threading.Event


@pytest.fixture(scope="session")
def edge(session_tmp: Path) -> Iterator[Edge]:
    """ef_proxy with tight limits (1 s read timeout, one connection and 2 requests/s a client)
    in front of the scripted upstream."""
    flooded: list[int] = []
    flood_done = threading.Event()
    handler = type("Handler", (Scripted,), {"flooded": flooded, "flood_done": flood_done})
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    upstream.daemon_threads = True
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    address = f"127.0.0.1:{upstream.server_address[1]}"
    proxy, ports = start_proxy(
        session_tmp / "proxy-edge",
        {
            "EF_BACKEND_UPSTREAM": address,
            "EF_FRONTEND_UPSTREAM": address,
            "EF_PROXY_READ_TIMEOUT": "1s",
            "EF_PROXY_CONN_LIMIT": "1",
            "EF_PROXY_RATE": "2r/s",
            "EF_PROXY_BURST": "1",
            "EF_PROXY_MAX_BODY": "1k",
        },
    )
    try:
        proxy.wait_ready("/metrics", status=403, timeout=30)
        yield Edge(proxy, f"http://127.0.0.1:{ports['http']}", flooded, flood_done)
    finally:
        proxy.stop()
        upstream.shutdown()
        upstream.server_close()
