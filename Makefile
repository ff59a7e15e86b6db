# The README's commands. Every target sets up first (idempotent: ~1 s when nothing changed).
PY := .venv/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: setup test demo demo-quick bench bench-quick tables plots clean
setup:
	bash tools/setup_env.sh

test: setup           ## the test suite (what CI runs): 2 workers × 1 thread (no OpenMP oversubscription)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile -q

demo: setup           ## the main job: end-to-end run on embedded real data → results/
	$(PY) -m benchmarks.demo

demo-quick: setup
	$(PY) -m benchmarks.demo --quick

bench: setup          ## every benchmark script → result records, then the tables
	$(PY) -m benchmarks.run

bench-quick: setup
	$(PY) -m benchmarks.run --quick

tables: setup
	$(PY) -m benchmarks.table --layout all

plots: setup
	$(PY) -m benchmarks.plots

clean:
	rm -rf .venv .cache/assets results work_dirs
