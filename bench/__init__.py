"""The benchmark suite: `python -m bench` (see BENCHMARKS.md); each benchmark prints ratios against a same-run baseline.

Never sends traffic anywhere but 127.0.0.1 subprocesses it starts itself, and never runs an unbounded load loop.
"""
