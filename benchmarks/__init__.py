"""Benchmarks for portable-wait: run with ``make bench`` (``python -m benchmarks``), never part of ``make test``."""
