"""EchoForge backend (ef_backend)."""

__version__ = "0.1.0"
