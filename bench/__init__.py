"""Benchmarks, one module per figure in docs/benchmarks.md; run each from the project root as a
module: ``.venv/bin/python -m bench.throughput --database sqlite``."""
