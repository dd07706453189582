"""``ef``: the operator's one command (``ef-backend`` is the same program, kept for old images).

See `ef_backend.cli.main` for the commands and `ef_backend.cli.output` for the exit codes.
"""

from ef_backend.cli.main import main

__all__ = ["main"]
