"""Metrics, request middleware, scrape-time collector and tracing of ef_backend.

Entry point: :func:`ef_backend.observability.install.install`.
"""
