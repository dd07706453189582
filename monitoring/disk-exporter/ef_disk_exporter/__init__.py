"""EchoForge disk exporter: disk usage of the data volumes for Prometheus, read at scrape time."""

from ef_disk_exporter.collector import DiskCollector, PathUsage, read_usage
from ef_disk_exporter.config import ExporterConfig

__version__ = "0.1.0"
__all__ = ["DiskCollector", "ExporterConfig", "PathUsage", "__version__", "read_usage"]
