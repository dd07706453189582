"""The backend under each instrumentation configuration, for bench/instrumentation.py.

uvicorn loads ``bench.apps:create`` as a factory; ``BENCH_CONFIG`` picks the configuration:

  off        no request instrumentation: ``install()`` skipped (no middleware, no ``ef_http_*``,
             no access log, no tracing)
  metrics    what ``install()`` adds, with the access log and tracing off
  all        everything on: metrics, JSON access log, tracing with the default sampler (every
             request traced) exported over OTLP
  all-10pct  as ``all`` with ``OTEL_TRACES_SAMPLER=parentbased_traceidratio``, ``ARG=0.1``

The log level and ``OTEL_*`` variables come from the environment the benchmark sets.
"""

from __future__ import annotations

import os
from typing import Any

CONFIGS = ("off", "metrics", "all", "all-10pct")


def create() -> Any:
    config = os.environ.get("BENCH_CONFIG", "off")
    if config not in CONFIGS:
        raise SystemExit(f"BENCH_CONFIG must be one of {', '.join(CONFIGS)}, not {config!r}")
    if config == "off":
        import ef_backend.observability.install as install_module

        patched: Any = install_module  # replaced before main imports it
        patched.install = lambda *a, **k: None
    from ef_backend.main import create_app

    return create_app()
