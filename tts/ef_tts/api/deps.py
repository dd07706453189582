"""Dependencies the routes share: the engine runtime and settings stored on the app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ef_tts.config import Settings
from ef_tts.runtime import EngineRuntime


def get_runtime(request: Request) -> EngineRuntime:
    runtime: EngineRuntime = request.app.state.runtime
    return runtime


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


RuntimeDep = Annotated[EngineRuntime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
