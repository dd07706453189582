"""Run the stock Coqui ``tts-server`` (``TTS.server.server``) bound to 127.0.0.1.

The stock server hard-codes ``app.run(host="::")`` (every interface). Tests may only listen on
loopback, so this wrapper changes nothing but the bind address: it patches ``Flask.run`` to
force ``host="127.0.0.1"`` and then runs the unmodified module's ``main()``, exactly as the
``tts-server`` console script does, with the given command line.
Run with the Coqui environment's Python::

    .venv-coqui/bin/python tests/utils/stock_tts_server.py --model_path M --config_path C --port P
"""

from __future__ import annotations

import importlib
import sys
from typing import Any


def main() -> None:
    import flask

    original_run = flask.Flask.run

    def run_on_loopback(self: flask.Flask, *args: Any, **kwargs: Any) -> None:
        kwargs["host"] = "127.0.0.1"
        original_run(self, *args, **kwargs)

    flask.Flask.run = run_on_loopback
    sys.argv = ["tts-server", *sys.argv[1:]]
    # Imported under its own name (as the ``tts-server`` entry point does) so Flask finds the
    # module's templates; the import parses argv and loads the model.
    server = importlib.import_module("TTS.server.server")
    server.main()


if __name__ == "__main__":
    main()
