"""Turn the speech service's results into HTTP responses: whole audio, streamed audio, SSE."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Mapping
from typing import BinaryIO

from fastapi import Response
from fastapi.responses import FileResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from ef_backend.models import AudioFormat
from ef_backend.services.cache import relative_path
from ef_backend.services.speech import SpeechAudio, SpeechStream


def _headers(
    *, cache_hit: bool, job_id: str | None, fmt: AudioFormat | None = None
) -> dict[str, str]:
    headers = {"X-EF-Cache": "hit" if cache_hit else "miss"}
    if job_id:
        headers["X-EF-Job-Id"] = job_id
    if fmt is not None:
        headers["Content-Disposition"] = f'inline; filename="speech.{fmt.value}"'
    return headers


class AudioFileResponse(FileResponse):
    """A cache file sent from disk in chunks of `chunk_size` (never the whole file in memory).

    A plain request costs one thread hop: the file is opened and its first chunk read together,
    before the status line is sent (so a file evicted in between is an error status, not a cut
    reply), and a typical reply is that one chunk. ``Range`` and ``HEAD`` requests are left to
    Starlette's `FileResponse`.
    """

    chunk_size = 256 * 1024

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "HEAD" or _has_range(scope):
            await super().__call__(scope, receive, send)
            return
        file, chunk = await asyncio.to_thread(self._open_first)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            more = len(chunk) == self.chunk_size
            await send({"type": "http.response.body", "body": chunk, "more_body": more})
            while more:
                chunk = await asyncio.to_thread(file.read, self.chunk_size)
                more = len(chunk) == self.chunk_size
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
        finally:
            file.close()
        if self.background is not None:
            await self.background()

    def _open_first(self) -> tuple[BinaryIO, bytes]:
        file = open(self.path, "rb")  # noqa: SIM115 - closed by __call__
        try:
            return file, file.read(self.chunk_size)
        except BaseException:
            file.close()
            raise


def _has_range(scope: Scope) -> bool:
    return any(name == b"range" for name, _ in scope["headers"])


def audio_reply(audio: SpeechAudio, fmt: AudioFormat, *, accel_prefix: str = "") -> Response:
    """The complete audio, streamed from its cache file, with its cache and job headers.

    The ``stat`` taken at the lookup gives Content-Length, ETag and Last-Modified (no second
    system call); ``Range`` requests are answered by Starlette.

    With ``accel_prefix`` (EF_ACCEL_REDIRECT_PREFIX, behind ef_proxy) a cache hit is answered
    with an empty body and ``X-Accel-Redirect``: nginx then sends the cached file itself. The
    decision who may have the audio, and the hit count, stay here.
    """
    headers = _headers(cache_hit=audio.cache_hit, job_id=audio.job_id, fmt=fmt)
    if audio.file is None:  # made, but the disk refused it: sent from memory, this once
        headers["X-EF-Stored"] = "no"
        return Response(content=audio.data, media_type=audio.media_type, headers=headers)
    if accel_prefix and audio.cache_hit:
        headers["X-Accel-Redirect"] = accel_prefix + relative_path(audio.cache_key, fmt)
        return Response(content=b"", media_type=audio.media_type, headers=headers)
    return AudioFileResponse(
        audio.file.path, stat_result=audio.file.stat, media_type=audio.media_type, headers=headers
    )


def stream_reply(stream: SpeechStream, fmt: AudioFormat) -> StreamingResponse:
    """Audio sent as sentences finish (chunked transfer, no Content-Length)."""
    return StreamingResponse(
        stream.chunks,
        media_type=stream.media_type,
        headers=_headers(cache_hit=stream.cache_hit, job_id=stream.job_id, fmt=fmt),
    )


def _event(payload: Mapping[str, object]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


async def _sse(chunks: AsyncIterator[bytes], input_chars: int) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        if chunk:
            audio = base64.b64encode(chunk).decode("ascii")
            yield _event({"type": "speech.audio.delta", "audio": audio})
    # OpenAI reports tokens; the nearest honest count here is characters of input.
    usage = {"input_tokens": input_chars, "output_tokens": 0, "total_tokens": input_chars}
    yield _event({"type": "speech.audio.done", "usage": usage})


async def _one(audio: SpeechAudio) -> AsyncIterator[bytes]:
    yield audio.data if audio.file is None else await asyncio.to_thread(audio.file.path.read_bytes)


def sse_reply(source: SpeechStream | SpeechAudio, *, input_chars: int) -> StreamingResponse:
    """OpenAI's ``stream_format: sse``: ``speech.audio.delta`` events, then ``...done``."""
    if isinstance(source, SpeechStream):
        chunks, hit, job_id = source.chunks, source.cache_hit, source.job_id
    else:
        chunks, hit, job_id = _one(source), source.cache_hit, source.job_id
    return StreamingResponse(
        _sse(chunks, input_chars),
        media_type="text/event-stream",
        headers={**_headers(cache_hit=hit, job_id=job_id), "Cache-Control": "no-cache"},
    )


__all__ = ["audio_reply", "sse_reply", "stream_reply"]
