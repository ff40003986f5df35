"""Smoke tests of the benchmark suite (bench/): each benchmark runs in a tiny configuration and yields ratios.

Never asserts a performance threshold: only that every benchmark runs, finishes, and produces finite numbers.
"""
