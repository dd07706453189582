"""``/admin``: the admin page for addresses in EF_ADMIN_CIDRS, a plain 403 page for the rest.

The page itself is a static file of the frontend; gating it here (as the proxy does in the
compose stack) means a visitor from elsewhere gets a page that says why, not a page whose every
request fails. The admin API checks the address again on each call.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, PlainTextResponse, Response

from ef_backend.api.deps import CallerDep, SettingsDep
from ef_backend.core.security import is_admin

router = APIRouter(tags=["pages"], include_in_schema=False)

_NO_STORE = {"Cache-Control": "no-store"}  # the answer depends on who asks


def admin_page(caller: CallerDep, settings: SettingsDep) -> Response:
    directory = settings.frontend_dir
    allowed = is_admin(caller.address, settings.admin_cidrs)
    page = directory / ("admin/index.html" if allowed else "403.html")
    if not page.is_file():
        return PlainTextResponse(
            "The admin page is not installed (EF_FRONTEND_DIR)." if allowed else "Forbidden",
            status_code=404 if allowed else 403,
        )
    return FileResponse(page, status_code=200 if allowed else 403, headers=_NO_STORE)


for _path in ("/admin", "/admin/", "/admin/index.html"):
    router.add_api_route(_path, admin_page, methods=["GET", "HEAD"], response_class=Response)
