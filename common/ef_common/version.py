"""The EchoForge version, kept in one place: ``VERSION`` at the repository root.

Images are built with ``--build-arg EF_VERSION=$(cat VERSION)`` (the workflows do this; the
same value becomes the OCI label ``org.opencontainers.image.version``) and run with it in the
environment; a checkout reads the file itself. The release workflow refuses a tag that is not
``v`` + VERSION, and tests/backend/test_version.py holds every other place to it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path

__all__ = ["version"]

_REPO_VERSION_FILE = Path(__file__).resolve().parents[2] / "VERSION"


@lru_cache
def version() -> str:
    """``EF_VERSION`` (set in images), else the checkout's VERSION file, else the package's."""
    from_env = os.environ.get("EF_VERSION", "").strip()
    if from_env:
        return from_env
    if _REPO_VERSION_FILE.is_file():
        return _REPO_VERSION_FILE.read_text().strip()
    return metadata.version("ef-common")
