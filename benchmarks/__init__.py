"""Benchmark scripts that measure and write result records (the schema is `contracts.records`), sharing their
flags and timing harness (`benchmarks.common`); the comparison tables and plots, which read only records; the
end-to-end demo; `python -m benchmarks.run`, the whole suite."""
