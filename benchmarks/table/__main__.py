"""`python -m benchmarks.table`: see `benchmarks.table.cli`."""
from .cli import main

main()
