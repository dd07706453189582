"""Benchmarks (`make bench` runs them); results and the commands in docs/performance.md."""
