"""Shared by ef_backend and ef_tts, so that both services log, trace and answer alike.

- :mod:`ef_common.logging`: JSON logs on stdout (``configure_logging``, ``uvicorn_log_config``).
- :mod:`ef_common.context`: the request id and caller of the request being handled.
- :mod:`ef_common.asgi`: the request middleware (request id, metrics hook, access log).
- :mod:`ef_common.tracing`: the OpenTelemetry SDK from the standard ``OTEL_*`` variables, the
  FastAPI and httpx instrumentations (``instrument_app``, ``instrument_httpx_client``).
- :mod:`ef_common.voices`: the OpenAI voice names both services accept.
"""
