# The two commands README promises: `make demo` and `make test`. Both install what they need.
# Another interpreter gets its own venv: `make test PYTHON=python3.13 VENV=.venv-3.13`, or
# `make test-py313` (the highest Python the project supports; 3.11 is the lowest and the default).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# python3.13 on PATH if it runs (a pyenv shim may exist and refuse), else pyenv's 3.13 build.
PYTHON313 ?= $(shell for p in python3.13 $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13*/bin/python3.13 \
	/root/.pyenv/versions/3.13*/bin/python3.13; do "$$p" -c '' 2>/dev/null && { command -v "$$p"; break; }; done)
# `make lock` runs uv from its own throwaway venv (uv is needed only to write the lock; installing
# it needs plain pip). LOCK_FLAGS=--upgrade moves every package to its newest allowed version;
# without it the pins already in the lock are kept wherever pyproject.toml still allows them.
UV_VERSION := 0.13.9
UV_VENV := build/uv-$(UV_VERSION)
LOCK_FLAGS ?=

.PHONY: install lock test-py313 demo ui test bench emulator clean

# Exact, hashed versions from the lock (plain pip, no uv), then the project itself without deps.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/python .ci/lock_covers_pyproject.py
	touch $(STAMP)

install: $(STAMP)

# One universal lock for Python 3.11-3.13 on every platform, base deps + the dev and postgres extras.
lock:
	test -x $(UV_VENV)/bin/uv || { $(PYTHON) -m venv $(UV_VENV) && \
		$(UV_VENV)/bin/pip install --quiet uv==$(UV_VERSION); }
	$(UV_VENV)/bin/uv pip compile --quiet pyproject.toml --extra dev --extra postgres --universal \
		--python-version 3.11 --generate-hashes --custom-compile-command "make lock" \
		$(LOCK_FLAGS) -o $(LOCK)

test-py313:
	@test -n "$(PYTHON313)" || { echo "no working python3.13 found (PATH, pyenv)" >&2; exit 1; }
	$(MAKE) test PYTHON=$(PYTHON313) VENV=.venv-3.13

demo: $(STAMP)
	$(BIN)/kustomer-assets demo --days 30

ui: $(STAMP)
	$(BIN)/kustomer-assets ui

emulator: $(STAMP)
	$(BIN)/kustomer-assets emulator

test: $(STAMP)
	$(BIN)/ruff check kustomer_assets kustomer_assets_tests benchmarks
	$(BIN)/ruff format --check kustomer_assets kustomer_assets_tests benchmarks
	$(BIN)/pytest -n 2 --durations=10

# Benchmark suite (benchmarks/run_all.py): prints the acceptance table, writes
# benchmarks/results/*.json and benchmarks/RESULTS.md. `bench` takes ~10-15 min on 2 cores;
# `bench-full` runs the issue's sizes (~45 min).
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --label "make bench"

.PHONY: bench-full
bench-full: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --full --label "make bench-full"

clean:
	rm -rf .demo data
