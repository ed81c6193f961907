"""Benchmarks (issue #10): `nox -s bench`, or `python -m tests.bench.run --help`.

Files are named `run.py` and `bench_*.py` so that pytest never collects them.
"""
