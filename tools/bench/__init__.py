"""Benchmarks of the running system against the limits of the same machine, side by side.

``python -m tools.bench`` (``make bench``) starts the stack, pre-fills topics with simulator
events, and measures aggregation, rebuild, ingestion, latency, freshness and memory, each
beside a baseline taken in the same run (a bare consumer, Kafka's own perf tools). The figures
go to one table and to a JSON file; docs/benchmarks.md records a run and what limits each case.
"""
