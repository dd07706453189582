"""``python -m ef_backend``: the same as the ``ef`` command."""

from __future__ import annotations

import sys

from ef_backend.cli import main

if __name__ == "__main__":
    sys.exit(main())
