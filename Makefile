# The two front-door commands (README.md): `make demo` runs the gateway on its embedded default,
# `make test` runs the checks (ruff, ruff format, import contracts, mypy) and the test suite.
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
EMULATOR_PORT ?= 0

.PHONY: demo test lint schema bench install

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/delivery-gateway demo --host $(HOST) --port $(PORT) --emulator-port $(EMULATOR_PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

schema: $(STAMP)
	$(BIN)/python -m delivery_gateway.graphql.export > schema.graphql

# `make bench BENCH_ARGS="--quick"`, or one row: `make bench BENCH_ARGS="cold"` (see BENCHMARKS.md).
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)
