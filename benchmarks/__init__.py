"""Benchmarks: each ``bench_*.py`` module's ``main()`` prints ratios measured side by side."""
