"""Benchmarks, result records (contract 3), comparison tables, plots and the end-to-end demo."""
