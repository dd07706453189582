"""The Coqui TTS server API (``/api/tts``, ``/details``) plus ``/api/voices``.

``/api/tts`` reads its parameters exactly as the stock ``tts-server`` does: a header
(``text``, ``speaker-id``, ``language-id``, ``style-wav``) wins over the query string or form
field (``text``, ``speaker_id``, ``language_id``, ``style_wav``). We add ``speed`` and say with
``X-EF-Speed-Applied: 1`` that it was honoured.
"""

from __future__ import annotations

import html
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from ef_tts.api.deps import RuntimeDep, SettingsDep
from ef_tts.api.validate import check_text, parse_speed
from ef_tts.audio import to_wav
from ef_tts.engines import Synthesis

router = APIRouter(tags=["coqui"])


async def _param(request: Request, header: str, name: str) -> str | None:
    """Header first, then query string, then form field (Flask's ``request.values``)."""
    value = request.headers.get(header)
    if value:
        return value
    if name in request.query_params:
        return request.query_params[name]
    if request.method == "POST" and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        field = form.get(name)
        if isinstance(field, str):
            return field
    return None


def audio_headers(result: Synthesis, engine: str, model: str) -> dict[str, str]:
    headers = {
        "X-EF-Engine": engine,
        "X-EF-Model": model,
        "X-EF-Voice": result.voice,
        "X-EF-Audio-Seconds": f"{result.duration_s:.3f}",
    }
    if result.speed_applied:
        headers["X-EF-Speed-Applied"] = "1"
    return headers


@router.api_route("/api/tts", methods=["GET", "POST"], response_class=Response)
async def tts(request: Request, runtime: RuntimeDep, settings: SettingsDep) -> Response:
    """Speak ``text`` and return a 16-bit mono WAV."""
    text = check_text(await _param(request, "text", "text") or "", settings)
    speed = parse_speed(await _param(request, "speed", "speed"), settings)
    voice = await _param(request, "speaker-id", "speaker_id")
    language = await _param(request, "language-id", "language_id")
    style_wav = await _param(request, "style-wav", "style_wav")
    result = await runtime.synthesize(
        text,
        voice=voice or None,
        language=language or None,
        speed=speed,
        style_wav=style_wav or None,
    )
    engine, model = runtime.labels
    return Response(
        to_wav(result.samples, result.sample_rate),
        media_type="audio/wav",
        headers=audio_headers(result, engine, model),
    )


@router.get("/api/voices")
async def voices(runtime: RuntimeDep) -> list[dict[str, Any]]:
    """Every voice (``speaker_id`` value) the loaded model speaks; 503 while it loads."""
    runtime.require_ready()
    return [asdict(v) for v in runtime.engine.voices()]


@router.get("/details", response_class=Response)
async def details(request: Request, runtime: RuntimeDep) -> Response:
    """The model's configuration: an HTML table like the stock server, or JSON on request."""
    runtime.require_ready()
    # ``model_name`` first, as in the stock page's argument table (clients scrape it).
    info = {"model_name": runtime.engine.model, **runtime.engine.details()}
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(info)
    rows = "\n".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in info.items()
    )
    body = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>TTS engine</title>'
        "</head><body><b>Model details</b><details open><summary>Model config:</summary>"
        f'<table border="1"><tr><td> Key </td><td> Value </td></tr>{rows}</table>'
        "</details></body></html>"
    )
    return HTMLResponse(body)
