# The two commands README promises: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo ui test bench emulator clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

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
