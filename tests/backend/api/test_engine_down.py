"""Cached audio while the engine is unreachable: every hit is served, and the engine is not
asked again for each one (the backend remembers its identity and voices).

The unreachable engine is a listening socket in this process (a stand-in: a real ef_tts cannot
be made to accept connections and then drop or ignore them). It counts the connections the
backend opens, which is what a per-request engine probe would show.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.backend.api.helpers import client_for, unique_text
from tests.backend.conftest import BackendFactory

pytestmark = pytest.mark.server

HITS = 40
#: Connections the backend may open in the whole test, whatever the number of hits: the first
#: request's voice list, one background refresh of it, and a few start-up/periodic probes.
MAX_ENGINE_CONNECTIONS = 6


class CountingEngine:
    """Accepts connections and counts them; ``hang`` keeps each open without a word, else it is
    closed at once (a dropped connection)."""

    def __init__(self, *, hang: bool) -> None:
        self.hang = hang
        self.accepted = 0
        self._open: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:  # closed: the test is over
                return
            self.accepted += 1
            if self.hang:
                self._open.append(conn)
            else:
                conn.close()

    def close(self) -> None:
        # shutdown() wakes the blocked accept(); the thread is joined before the connections it
        # kept are closed, so that none it accepts meanwhile is left open (a ResourceWarning in
        # whichever test runs next).
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "the stand-in engine did not stop"
        for conn in self._open:
            conn.close()


@pytest.fixture(params=["dropped", "hanging"])
def dead_engine(request: pytest.FixtureRequest) -> Iterator[CountingEngine]:
    engine = CountingEngine(hang=request.param == "hanging")
    try:
        yield engine
    finally:
        engine.close()


def test_cache_hits_do_not_ask_a_down_engine_each_time(
    backend_factory: BackendFactory, session_tmp: Path, dead_engine: CountingEngine
) -> None:
    """A backend restarted while its engine is unreachable (connections dropped, or accepted and
    never answered) serves 40 cache hits, each 200 ``X-EF-Cache: hit`` with the audio first
    made, and opens a bounded number of connections to the engine, not one per hit."""
    data = session_tmp / f"engine-down-{'hang' if dead_engine.hang else 'drop'}"
    body = {"text": unique_text("Served while the engine is down"), "format": "mp3"}
    first = backend_factory(data)  # the shared Piper ef_tts: makes the audio and engine.json
    with client_for(first) as client:
        made = client.post("/api/v1/speech", json=body)
        assert made.status_code == 200, made.text
        assert made.headers["x-ef-cache"] == "miss"
    first.stop()

    down = backend_factory(
        data,
        ready_path="/health/live",
        EF_TTS_URL=dead_engine.url,
        EF_TTS_TIMEOUT_S="1",
        EF_TTS_CONNECT_TIMEOUT_S="0.5",
    )
    with client_for(down) as client:
        for _ in range(HITS):
            again = client.post("/api/v1/speech", json=body)
            assert again.status_code == 200, again.text
            assert again.headers["x-ef-cache"] == "hit"
            assert again.content == made.content
        ready = client.get("/health/ready")
    assert ready.status_code == 503, ready.text  # the engine really was unreachable
    assert 1 <= dead_engine.accepted <= MAX_ENGINE_CONNECTIONS, dead_engine.accepted


def test_backend_started_while_its_engine_hangs_answers_without_waiting_the_synthesis_limit(
    backend_factory: BackendFactory, session_tmp: Path
) -> None:
    """A backend restarted while its engine accepts connections and never answers, with a
    synthesis limit of an hour (EF_TTS_TIMEOUT_S, as a slow CPU may need): the first cache hit,
    the voice list and readiness still answer, because the engine's small calls (health, voices)
    have their own short limit before the backend falls back to ``engine.json``.

    Fails when those calls wait the synthesis limit: the client gives up after 30 s a request
    (the small calls' limit is 10 s plus the connect timeout; readiness may wait for the probe
    under way, then probe once itself)."""
    data = session_tmp / "engine-hangs-at-start"
    body = {"text": unique_text("Served while the engine hangs"), "format": "wav"}
    first = backend_factory(data)  # the shared Piper ef_tts: makes the audio and engine.json
    with client_for(first) as client:
        made = client.post("/api/v1/speech", json=body)
        assert made.status_code == 200, made.text
        voices = client.get("/api/v1/voices").json()
    first.stop()

    hanging = CountingEngine(hang=True)
    try:
        down = backend_factory(
            data, ready_path="/health/live", EF_TTS_URL=hanging.url, EF_TTS_TIMEOUT_S="3600"
        )
        with httpx.Client(base_url=down.url, timeout=30) as client:
            hit = client.post("/api/v1/speech", json=body)
            assert hit.status_code == 200, hit.text
            assert hit.headers["x-ef-cache"] == "hit"
            assert hit.content == made.content
            listed = client.get("/api/v1/voices")
            assert listed.status_code == 200, listed.text
            assert listed.json() == voices
            ready = client.get("/health/ready")
            assert ready.status_code == 503, ready.text
        assert hanging.accepted >= 1  # the backend did ask the hanging engine
    finally:
        hanging.close()
