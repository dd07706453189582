"""Shared by ef_backend and ef_tts, so that both services log, trace and answer alike.

- :mod:`ef_common.logging`: JSON logs on stdout (``configure_logging``, ``uvicorn_log_config``).
- :mod:`ef_common.context`: the request id and caller of the request being handled.
- :mod:`ef_common.asgi`: the request middleware (request id, request span, metrics hook,
  access log).
- :mod:`ef_common.tracing`: OpenTelemetry from the standard ``OTEL_*`` variables
  (``instrument_app``).
- :mod:`ef_common.spans`: our implementation of the OpenTelemetry tracing API (lean spans,
  samplers, limits); :mod:`ef_common.span_export`: batching, OTLP/HTTP and console export;
  :mod:`ef_common.otlp_proto`: the OTLP protobuf written directly.
- :mod:`ef_common.voices`: the OpenAI voice names both services accept.
"""
