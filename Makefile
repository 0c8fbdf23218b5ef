# Every target makes .venv and installs what it needs: a fresh machine needs only Python 3.11 and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format clean bench bench-smoke bench-tools

$(STAMP): pyproject.toml plugins/pictofit/pyproject.toml plugins/artifi/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e plugins/pictofit -e plugins/artifi
	touch $(STAMP)

## run: the gateway in sandbox mode (SQLite, every backend's simulator in-process, a demo tenant)
run: $(STAMP)
	$(BIN)/gateway serve --sandbox

## test: the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest

## lint: what CI checks besides the tests
lint: $(STAMP)
	$(BIN)/ruff check gateway plugins tests bench
	$(BIN)/ruff format --check gateway plugins tests bench
	$(BIN)/mypy --strict

format: $(STAMP)
	$(BIN)/ruff check --fix gateway plugins tests bench
	$(BIN)/ruff format gateway plugins tests bench

clean:
	rm -rf $(VENV) .gateway-data .mypy_cache .ruff_cache .pytest_cache

## bench: the benchmarks (table on stdout, JSON in bench/results/)
bench: $(STAMP) bench-tools
	$(BIN)/python -m bench

bench-smoke: $(STAMP) bench-tools
	$(BIN)/python -m bench --smoke

# wrk (the load generator) and nginx (an upstream that is not the bottleneck), from Debian.
bench-tools:
	@command -v wrk >/dev/null && command -v nginx >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light)
