"""A do-nothing OTLP/HTTP receiver: accepts ``POST /v1/traces`` and counts the bytes.

The "everything on" configuration exports its spans here, so the benchmark pays the real cost
of encoding and sending them without needing a collector.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive, as the OpenTelemetry Collector, Tempo and Jaeger serve OTLP/HTTP: the
    # exporter's connection is reused rather than opened for every batch.
    protocol_version = "HTTP/1.1"
    received = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        _Handler.received += len(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), _Handler)
    try:
        server.serve_forever()
    finally:
        print(f"otlp sink received {_Handler.received} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
