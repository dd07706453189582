"""EchoForge speech engine service (ef_tts)."""

from ef_common.version import version

#: One version for the whole project: VERSION at the repository root (ef_common.version).
__version__ = version()
