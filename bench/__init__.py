"""Benchmarks: `bench/run.py` (what `make bench` runs); results in docs/performance.md."""
