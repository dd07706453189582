"""`EngineClient`: HTTP to ef_tts, speaking the Coqui TTS server API.

Because only the stock API is required (``/api/tts`` with text and speaker id), a stock Coqui
``tts-server`` works too: voices then come from its MaryTTS ``/voices`` list (or one ``default``
voice) and its model name from ``/details``. ef_tts adds ``/api/voices``, ``/health``, a
``speed`` parameter and the ``X-EF-Speed-Applied`` header.

Failures become two domain errors the queue can act on: `EngineUnavailable` (``reason``
unreachable, timeout or engine_error: worth retrying) and `EngineRejected` (a 4xx: the input
itself is refused). Connection failures are retried here with a short backoff; anything slower
is the queue's business. With tracing on, the httpx instrumentation makes each call a client
span and sends W3C trace context, so ef_tts continues the trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from ef_common.tracing import instrument_httpx_client

from ef_backend.core.errors import EngineRejected, EngineUnavailable

log = logging.getLogger(__name__)

__all__ = ["EngineAudio", "EngineClient", "EngineInfo", "EngineVoice"]

#: Backoff before the n-th retry of a refused connection: 0.2 s, 0.4 s, 0.8 s ...
_CONNECT_BACKOFF_S = 0.2
#: What a client is told to wait when the engine is down.
RETRY_AFTER_S = 5.0
#: The voice id given to a stock server's only voice; sent to it as an empty speaker id.
DEFAULT_VOICE_ID = "default"
#: The read limit of the engine's small answers (health, voices, details): milliseconds of work
#: for an engine that works. The synthesis limit (EF_TTS_TIMEOUT_S, minutes on a slow CPU) would
#: hold every request of a backend started while its engine hangs, cache hits included.
META_TIMEOUT_S = 10.0
_DETAILS_MODEL = re.compile(r"<td>\s*model_name\s*</td>\s*<td>\s*([^<\s][^<]*?)\s*</td>", re.I)


@dataclass(frozen=True)
class EngineVoice:
    """A voice the engine offers."""

    id: str
    name: str
    language: str | None
    engine: str
    sample_rate: int | None
    default: bool


@dataclass(frozen=True)
class EngineInfo:
    """What the engine says about itself (``GET /health``)."""

    engine: str
    model: str
    loaded: bool
    status: str
    error: str | None


@dataclass(frozen=True)
class EngineAudio:
    """One synthesis: a WAV, and whether the engine already applied the requested speed."""

    wav: bytes
    speed_applied: bool


def _error_message(response: httpx.Response) -> str:
    """The engine's own explanation: ``{"error": {"message"}}``, ``{"error": "..."}`` or text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error", body.get("detail"))
        if isinstance(error, dict):
            return str(error.get("message") or error)[:300]
        if error:
            return str(error)[:300]
    return str(body)[:300]


def _deadline(limits: httpx.Timeout) -> float:
    """The longest a whole engine call may take: its connect plus its read timeout."""
    return (limits.connect or 0.0) + (limits.read or 0.0)


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(1.0, float(response.headers.get("Retry-After", RETRY_AFTER_S)))
    except ValueError:
        return RETRY_AFTER_S


class EngineClient:
    """Async client of the engine at ``base_url``: one URL, or several replicas of the same
    engine (a comma-separated list or a sequence, as EF_TTS_URL may give).

    A call may name its replica (each worker keeps to one, so the load spreads); a call that
    names none goes to the replica that answered last and moves on to the next one when a
    replica cannot be reached.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 3.0,
        retries: int = 2,
    ) -> None:
        urls = base_url.split(",") if isinstance(base_url, str) else list(base_url)
        self.base_urls = [url.strip().rstrip("/") for url in urls if url.strip()]
        if not self.base_urls:
            raise ValueError("EF_TTS_URL names no engine")
        self.base_url = self.base_urls[0]
        self._preferred = 0
        self.retries = retries
        self._timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._meta_timeout = httpx.Timeout(
            min(timeout_s, META_TIMEOUT_S), connect=connect_timeout_s
        )
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stock_default = False  # a stock server without voices: send an empty speaker id

    def _http(self) -> httpx.AsyncClient:
        # One connection pool per event loop (tests run several loops in one process).
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(timeout=self._timeout)
            instrument_httpx_client(self._client)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(RuntimeError):  # its event loop is gone: nothing to close
                await client.aclose()

    @property
    def replica_count(self) -> int:
        return len(self.base_urls)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        replica: int | None = None,
        timeout: httpx.Timeout | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send to ``replica``, or to the first replica that can be reached (see the class)."""
        count = len(self.base_urls)
        if replica is not None:
            return await self._send(self.base_urls[replica % count], method, path, timeout, kwargs)
        first = self._preferred
        for step in range(count):
            index = (first + step) % count
            try:
                response = await self._send(self.base_urls[index], method, path, timeout, kwargs)
            except EngineUnavailable as exc:
                if not exc.down or step == count - 1:
                    raise
                log.warning(
                    "engine replica unreachable; trying the next",
                    extra={"replica": self.base_urls[index]},
                )
                continue
            self._preferred = index
            return response
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _send(
        self,
        base_url: str,
        method: str,
        path: str,
        timeout: httpx.Timeout | None,
        kwargs: dict[str, Any],
    ) -> httpx.Response:
        """Retry refused connections; map transport errors to `EngineUnavailable`."""
        url = f"{base_url}{path}"
        attempt = 0
        limits = timeout or self._timeout
        while True:
            try:
                # httpx's read timeout is per read: an engine sending one byte a second would
                # never trip it. The whole call gets the same limit as a deadline.
                async with asyncio.timeout(_deadline(limits)):
                    return await self._http().request(method, url, timeout=limits, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt < self.retries:
                    await asyncio.sleep(_CONNECT_BACKOFF_S * 2**attempt)
                    attempt += 1
                    continue
                raise EngineUnavailable(
                    f"The speech engine at {base_url} is unreachable "
                    f"({type(exc).__name__}); is ef_tts running?",
                    reason="unreachable",
                    down=True,
                ) from exc
            except (TimeoutError, httpx.TimeoutException) as exc:
                raise EngineUnavailable(
                    f"The speech engine at {base_url} did not answer in time "
                    f"({type(exc).__name__}; the limit is {_deadline(limits):g} s).",
                    reason="timeout",
                ) from exc
            except httpx.TransportError as exc:
                # Dropped mid-request: maybe this very input crashed the engine, so it counts
                # as an attempt (not "down"), or a poison job would loop forever.
                raise EngineUnavailable(
                    f"The connection to the speech engine at {base_url} failed "
                    f"({type(exc).__name__}).",
                    reason="unreachable",
                ) from exc

    def _raise_for_status(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        message = _error_message(response)
        if status >= 500 or status in (404, 405, 408, 429):
            raise EngineUnavailable(
                f"The speech engine failed {what} (HTTP {status}): {message}",
                reason="engine_error",
                retry_after=_retry_after(response),
                down=status == 503,  # ef_tts: model loading or failed to load
            )
        raise EngineRejected(f"The speech engine refused {what} (HTTP {status}): {message}")

    async def synthesize(
        self,
        text: str,
        *,
        voice: str | None,
        speed: float = 1.0,
        language: str | None = None,
        timeout_s: float | None = None,
        replica: int | None = None,
    ) -> EngineAudio:
        """A WAV of ``text``; ``voice`` None or "" is the engine's default voice.

        ``timeout_s`` overrides the client's read timeout (the health probe keeps it short).
        """
        timeout = None if timeout_s is None else httpx.Timeout(timeout_s, connect=timeout_s)
        speaker = voice or ""
        if self._stock_default and speaker == DEFAULT_VOICE_ID:
            speaker = ""
        form = {
            "text": text,
            "speaker_id": speaker,
            "language_id": language or "",
            "style_wav": "",
        }
        if abs(speed - 1.0) > 1e-9:
            form["speed"] = f"{speed:g}"
        # POST keeps the text out of URLs (and so out of access logs); very old stock servers
        # only know GET.
        response = await self._request(
            "POST", "/api/tts", data=form, timeout=timeout, replica=replica
        )
        if response.status_code == 405:
            response = await self._request(
                "GET", "/api/tts", params=form, timeout=timeout, replica=replica
            )
        self._raise_for_status(response, "the synthesis")
        content_type = response.headers.get("content-type", "")
        if not content_type.startswith("audio/") and not response.content.startswith(b"RIFF"):
            raise EngineUnavailable(
                f"The speech engine answered {content_type or 'no content type'} instead of audio.",
                reason="engine_error",
            )
        applied = response.headers.get("X-EF-Speed-Applied") == "1" or abs(speed - 1.0) < 1e-9
        return EngineAudio(wav=response.content, speed_applied=applied)

    async def voices(self) -> list[EngineVoice]:
        """ef_tts's ``/api/voices``, a stock server's MaryTTS ``/voices``, or one default voice."""
        response = await self._request("GET", "/api/voices", timeout=self._meta_timeout)
        if response.status_code == 200:
            body = response.json()
            items = body.get("data", body.get("voices")) if isinstance(body, dict) else body
            voices = [self._voice(item) for item in items or [] if isinstance(item, dict)]
            if voices:
                self._stock_default = False
                return voices
        elif response.status_code != 404:
            self._raise_for_status(response, "the voice list")
        return await self._stock_voices()

    def _voice(self, item: dict[str, Any]) -> EngineVoice:
        voice_id = str(item.get("id") or item.get("name") or "")
        rate = item.get("sample_rate")
        return EngineVoice(
            id=voice_id,
            name=str(item.get("name") or voice_id),
            language=item.get("language") or None,
            engine=str(item.get("engine") or "unknown"),
            sample_rate=int(rate) if isinstance(rate, int | float) else None,
            default=bool(item.get("default", False)),
        )

    async def _stock_voices(self) -> list[EngineVoice]:
        response = await self._request("GET", "/voices", timeout=self._meta_timeout)
        voices: list[EngineVoice] = []
        if response.status_code == 200 and "html" not in response.headers.get("content-type", ""):
            for index, line in enumerate(response.text.splitlines()):
                parts = line.split()
                if not parts:
                    continue
                language = parts[1] if len(parts) > 1 else None
                voices.append(EngineVoice(parts[0], parts[0], language, "coqui", None, index == 0))
        if len(voices) > 1:
            self._stock_default = False
            return voices
        # A single-speaker model ignores the speaker id: one "default" voice says it plainly.
        self._stock_default = True
        language = voices[0].language if voices else None
        return [EngineVoice(DEFAULT_VOICE_ID, "Default voice", language, "coqui", None, True)]

    async def info(self) -> EngineInfo:
        """``GET /health``; for a stock server (no /health) the model comes from /details."""
        response = await self._request("GET", "/health", timeout=self._meta_timeout)
        if response.status_code == 404:
            return await self._stock_info()
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        status = str(body.get("status") or ("ok" if response.status_code == 200 else "failed"))
        error = body.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        if response.status_code >= 400 and not error:
            error = f"HTTP {response.status_code}: {_error_message(response)}"
        return EngineInfo(
            engine=str(body.get("engine") or "unknown"),
            model=str(body.get("model") or self._url_model()),
            loaded=response.status_code == 200 and status == "ok",
            status=status,
            error=str(error) if error else None,
        )

    async def _stock_info(self) -> EngineInfo:
        response = await self._request("GET", "/details", timeout=self._meta_timeout)
        match = _DETAILS_MODEL.search(response.text) if response.status_code == 200 else None
        model = match.group(1) if match and match.group(1) != "None" else self._url_model()
        # A stock tts-server only answers once its model is loaded.
        return EngineInfo(engine="coqui", model=model, loaded=True, status="ok", error=None)

    def _url_model(self) -> str:
        parts = urlsplit(self.base_url)
        return f"tts-server@{parts.netloc}"
