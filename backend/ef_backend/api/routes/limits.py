"""``GET /api/v1/limits``: the text length, speeds and formats this server accepts.

The web page reads its character counter's limit and the speed range from here instead of
hard-coding them; open like the voices, because it reveals nothing but configuration.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ef_backend.api.deps import SettingsDep, rate_limit
from ef_backend.api.openapi_responses import errors
from ef_backend.api.schemas import STREAM_FORMATS, LimitsPublic
from ef_backend.models import AudioFormat

router = APIRouter(prefix="/api/v1", tags=["speech"], dependencies=[Depends(rate_limit)])


@router.get(
    "/limits",
    response_model=LimitsPublic,
    summary="What this server accepts",
    description="EF_MAX_TEXT_CHARS, the speed range, the formats, and whether a key is needed.",
    responses=errors(429),
)
def limits(settings: SettingsDep) -> LimitsPublic:
    return LimitsPublic(
        max_text_chars=settings.max_text_chars,
        min_speed=settings.min_speed,
        max_speed=settings.max_speed,
        formats=list(AudioFormat),
        stream_formats=list(STREAM_FORMATS),
        api_key_required=bool(settings.api_keys),
    )
