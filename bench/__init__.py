"""Benchmarks (not tests): each module is runnable as `python -m bench.<name>` and prints one
table with its figure as a ratio against a baseline measured in the same run.

See bench/README.md for how to run them and docs/PERFORMANCE.md for the recorded figures.
"""
