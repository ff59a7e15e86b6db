# The README's commands. `make test` and `make demo` set everything up first (idempotent).
PY := .venv/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: setup test test-fast demo bench backbone-bench clean
setup:
	bash tools/setup_env.sh

test: setup
	$(PY) -m pytest -n 2 --dist loadfile -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

demo: setup
	$(PY) -m benchmarks.demo

bench: setup
	$(PY) -m benchmarks.run

backbone-bench: setup
	$(PY) -m benchmarks.backbone_speed

clean:
	rm -rf .venv .cache/assets results work_dirs
