"""An emulation of an *older* stock Coqui ``tts-server``, with faults on demand.

Run: ``python -m tests.backend.services.stock_tts_standin PORT``.

The current stock server itself is tested for real: ``tests/tts/test_engine_client_compat.py``
runs coqui-tts's own ``tts-server`` on a tiny VITS model with the same client test as ef_tts.
What the real server cannot be made to do on demand is emulated here: the GET-only ``/api/tts``
of older releases (so the client's POST-then-GET fallback is exercised), an engine that answers
500 (text ``explode``), and recording the trace headers it receives (``/_seen``). The routes and
answers follow ``TTS/server/server.py`` (coqui-tts 0.28): ``/api/tts``, the MaryTTS ``/voices``
list and the HTML ``/details`` page; no ``/api/voices`` and no ``/health``.
"""

from __future__ import annotations

import io
import sys
import wave

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

app = FastAPI()
seen: list[dict[str, str]] = []


def _wav(seconds: float) -> bytes:
    rate = 16_000
    t = np.arange(round(seconds * rate)) / rate
    samples = (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return buffer.getvalue()


@app.get("/api/tts")
async def tts(request: Request) -> Response:
    seen.append(
        {
            "traceparent": request.headers.get("traceparent", ""),
            "speaker_id": request.query_params.get("speaker_id", "<absent>"),
            "chars": str(len(request.query_params.get("text", ""))),
        }
    )
    text = request.query_params.get("text", "")
    if not text:
        return JSONResponse({"error": "Text parameter is required"}, status_code=400)
    if text == "explode":  # how the stock server reports a synthesis exception
        return JSONResponse({"error": "TTS synthesis failed: boom"}, status_code=500)
    return Response(_wav(0.05 * len(text)), media_type="audio/wav")


@app.get("/voices")
async def voices() -> PlainTextResponse:
    # A single-speaker model: one line "name locale gender", as the MaryTTS route renders it.
    return PlainTextResponse("tts_models/en/ljspeech/vits en_US u\n")


@app.get("/details")
async def details() -> HTMLResponse:
    return HTMLResponse(
        "<html><body><table><tr><td>model_name</td>\n<td>tts_models/en/ljspeech/vits</td></tr>"
        "</table></body></html>"
    )


@app.get("/_seen")
async def get_seen() -> JSONResponse:
    return JSONResponse(seen)


@app.get("/health/live")
async def live() -> JSONResponse:  # only so the test harness can wait for start-up
    return JSONResponse({"status": "ok"})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
