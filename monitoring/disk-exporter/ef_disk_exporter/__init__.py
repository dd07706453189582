"""EchoForge disk exporter."""
