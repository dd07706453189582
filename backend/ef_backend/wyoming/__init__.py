"""Wyoming protocol server (Home Assistant's voice pipeline) on the backend's speech path."""

from ef_backend.wyoming.listener import ListenerHealth, WyomingListener

__all__ = ["ListenerHealth", "WyomingListener"]
