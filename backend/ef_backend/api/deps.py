"""Dependencies of the routes, as `Annotated` aliases: settings, the services, the caller.

Routers attach the guards (`rate_limit`, `api_client`, `admin_only`) as router dependencies so
that no route can forget one. They are ``async def`` because they never block: FastAPI runs a
plain ``def`` dependency in its thread pool, and those hops cost a cache hit more than its own
work. Each dependency FastAPI resolves costs a request tens of microseconds, so the services are
read straight off the app state and the speech routers' two guards are one.
"""

from __future__ import annotations

from typing import Annotated

from ef_common.context import bind_client
from fastapi import Depends, Request

from ef_backend.core.browser import require_same_origin
from ef_backend.core.config import Settings
from ef_backend.core.ratelimit import RateLimiter
from ef_backend.core.security import (
    Caller,
    identify,
    rate_limit_bucket,
    request_client_address,
    require_admin,
    require_admin_token,
    require_key,
)
from ef_backend.services.admin import AdminService
from ef_backend.services.health import HealthService
from ef_backend.services.jobs import JobService
from ef_backend.services.runtime import Runtime
from ef_backend.services.speech import SpeechService


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_speech(request: Request) -> SpeechService:
    return _runtime(request).speech


async def get_jobs(request: Request) -> JobService:
    return _runtime(request).jobs


async def get_admin(request: Request) -> AdminService:
    return _runtime(request).admin


async def get_health(request: Request) -> HealthService:
    return _runtime(request).health


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SpeechDep = Annotated[SpeechService, Depends(get_speech)]
JobsDep = Annotated[JobService, Depends(get_jobs)]
AdminDep = Annotated[AdminService, Depends(get_admin)]
HealthDep = Annotated[HealthService, Depends(get_health)]


async def get_caller(request: Request, settings: SettingsDep) -> Caller:
    """Who is calling; also tells the access log (its key name and address, never the key)."""
    caller = identify(
        address=request_client_address(request.scope, settings.trusted_proxies),
        authorization=request.headers.get("authorization"),
        api_keys=settings.api_keys,
    )
    request.state.client = caller.name
    bind_client(name=caller.name, ip=caller.address)
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


async def rate_limit(request: Request, caller: CallerDep) -> None:
    """One token per request from the caller's bucket: its key name, else its address (/64)."""
    limiter: RateLimiter = request.app.state.rate_limiter
    who = f"API key {caller.key_name!r}" if caller.key_name is not None else "this client"
    limiter.check(rate_limit_bucket(caller), who=who)


async def api_key(caller: CallerDep, settings: SettingsDep) -> None:
    """401 unless EF_API_KEYS is empty or the caller sent one of them."""
    require_key(caller, settings.api_keys)


async def api_client(request: Request, caller: CallerDep, settings: SettingsDep) -> None:
    """`rate_limit`, then `api_key`: the guard of the speech, jobs and OpenAI routers."""
    await rate_limit(request, caller)
    await api_key(caller, settings)


async def admin_only(request: Request, caller: CallerDep, settings: SettingsDep) -> None:
    """403 unless the client address is in EF_ADMIN_CIDRS and a state-changing request comes
    from this site's own pages (or no browser at all); 401 without EF_ADMIN_TOKEN when set."""
    require_admin(caller.address, settings.admin_cidrs)
    require_same_origin(request.method, request.headers)
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    require_admin_token(request.headers.get("authorization"), token)


__all__ = [
    "AdminDep",
    "CallerDep",
    "HealthDep",
    "JobsDep",
    "SettingsDep",
    "SpeechDep",
    "admin_only",
    "api_client",
    "api_key",
    "get_admin",
    "get_app_settings",
    "get_caller",
    "get_health",
    "get_jobs",
    "get_speech",
    "rate_limit",
]
