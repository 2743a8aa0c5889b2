"""Benchmark-only code: alternative service designs measured by scripts/bench_service.py."""
