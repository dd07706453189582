"""Fewer glibc malloc arenas for the server.

glibc gives threads that allocate at the same time arenas of their own (up to eight per core)
and seldom returns their free memory to the system. The backend's thread pool handles audio
buffers of hundreds of kilobytes (PCM, WAV, MP3), so its resident memory crept up steadily: 11 %
in the ten-minute soak, against 4 % with two arenas (docs/reliability.md). ``MALLOC_ARENA_MAX=2``
is the usual setting for threaded Python servers; an operator's own value wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["ARENAS", "limit_arenas"]

#: Arenas the server's processes use unless MALLOC_ARENA_MAX says otherwise.
ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Limit this process to ``arenas`` (``mallopt``) and the worker processes it starts (their
    environment). False when MALLOC_ARENA_MAX was set already or the C library is not glibc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    os.environ["MALLOC_ARENA_MAX"] = str(arenas)  # read by glibc when a worker process starts
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))
