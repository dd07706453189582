"""EchoForge monitoring mixin: the code that generates alerts, recording rules and dashboards.

``python -m monitoring.mixin`` (``make generate``) writes the files; ``--check`` fails when the
committed files differ from what this code generates (CI and a test run it).
"""
