# The two commands of the README: `make demo` (the main job) and `make test`.
# Both set up .venv (pinned torch and host frameworks) and the offline data first.
PY := .venv/bin/python
DEMO_ARGS ?=

.PHONY: setup data demo test lint bench

setup:
	scripts/setup_env.sh

data:
	scripts/get_data.sh

demo: data setup
	$(PY) -m gkl_plugins.demo $(DEMO_ARGS)

test: data setup
	$(PY) -m pytest tests

lint: setup
	.venv/bin/ruff check --line-length 100 .

bench: setup
	$(PY) benchmarks/bench_core.py
