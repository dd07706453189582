"""The web UI files under ``/``: only what a browser page is made of, nothing else in the folder.

``EF_FRONTEND_DIR`` also holds build files (the frontend's ``Dockerfile``); those are not web
assets and answer 404, as do hidden files.
"""

from __future__ import annotations

import stat
from pathlib import PurePosixPath

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["ASSET_SUFFIXES", "FrontendFiles"]

#: The file types of a static web page.
ASSET_SUFFIXES = frozenset(
    {".html", ".css", ".js", ".mjs", ".json", ".webmanifest", ".svg", ".png", ".ico", ".webp"}
)


class FrontendFiles(StaticFiles):
    """`StaticFiles` restricted to `ASSET_SUFFIXES` (a directory still serves its index.html)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        pure = PurePosixPath(path)
        if any(part.startswith(".") for part in pure.parts):
            raise HTTPException(status_code=404)
        _, found = await run_in_threadpool(self.lookup_path, path)
        is_file = found is not None and stat.S_ISREG(found.st_mode)
        if is_file and pure.suffix.lower() not in ASSET_SUFFIXES:
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)
