"""EchoForge speech engine service (ef_tts)."""

__version__ = "0.1.0"
