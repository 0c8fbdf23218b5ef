# Every target makes .venv and installs what it needs: a fresh machine needs only Python 3.11 and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: constraints run test lint format clean bench bench-smoke bench-tools postgres brokers client chromium schemathesis
.PHONY: compile clean-compiled
.PHONY: new-backend-check node-tools contract-tools

# Every plugin distribution under plugins/ (a folder with a pyproject.toml) is installed, and its
# package and tests/ are linted, type-checked (pyproject's mypy `files`) and tested (pytest's
# `testpaths`): a new plugin needs no edit outside its folder.
PLUGINS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))

# constraints.txt pins every distribution (the image installs the same): `make constraints` after
# changing a dependency.
$(STAMP): pyproject.toml constraints.txt $(addsuffix /pyproject.toml,$(PLUGINS))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]' $(addprefix -e ,$(PLUGINS))
	touch $(STAMP)

## constraints: constraints.txt anew from what the project's pyproject files ask for now
constraints: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(addprefix -e ,$(PLUGINS))
	{ sed -n '/^#/p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt

## compile: the hot modules ([tool.gateway] compiled in pyproject.toml and in each plugin's) compiled
## with mypyc into C extensions beside their sources; nothing is built when they are up to date.
## Importing gateway refuses an extension older than its source (gateway/compiled.py).
compile: $(STAMP)
	$(BIN)/python tools/compile.py $(PLUGINS)

## clean-compiled: the extensions removed: the sources run
clean-compiled: $(STAMP)
	$(BIN)/python tools/compile.py --clean

## run: the gateway in sandbox mode (SQLite, every backend's simulator in-process, a demo tenant);
## PORT=N serves on another port
run: $(STAMP) compile
	$(BIN)/gateway serve --sandbox $(if $(PORT),--port $(PORT))

## test: the whole test suite (its PostgreSQL, NATS and RabbitMQ tests start servers of their own)
test: $(STAMP) compile postgres brokers chromium
	$(BIN)/python -m pytest

## postgres: Debian's PostgreSQL server binaries, installed when missing (as root; else say so)
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	else \
		echo "PostgreSQL is not installed (apt-get install postgresql): its tests fail in CI, skip here"; \
	fi

## brokers: Debian's NATS server (JetStream) and RabbitMQ server, which the sink plugins' tests
## start private instances of (tests/brokers.py), installed when missing (as root; else say so)
brokers:
	@command -v nats-server >/dev/null && test -x /usr/lib/rabbitmq/bin/rabbitmq-server || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server rabbitmq-server; \
	else \
		echo "nats-server or rabbitmq-server is not installed (apt-get install nats-server rabbitmq-server): the sink tests fail in CI, skip here"; \
	fi

## chromium: Debian's Chromium, which tests/test_docs.py runs headless (as root; else say so)
chromium:
	@command -v chromium >/dev/null || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "Chromium is not installed (apt-get install chromium): the /docs browser test skips here"; \
	fi

## client: the Python client generated from the contract into build/client (fails on any warning)
client: $(STAMP)
	$(BIN)/python openapi/generate_client.py build/client

## node-tools: Node.js and npm (Debian's, when missing: as root; else say so), then tools/node's
## exact tool versions (npm ci from its package-lock.json)
NODE_STAMP := tools/node/node_modules/.installed
node-tools: $(NODE_STAMP)
$(NODE_STAMP): tools/node/package.json tools/node/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; \
	else \
		echo "Node.js is not installed (apt-get install nodejs npm)"; exit 1; \
	fi
	cd tools/node && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

## contract-tools: the merged contract linted by spectral and redocly (zero warnings), TypeScript
## types generated from it and a consumer's usage file type-checked with tsc --strict
contract-tools: $(STAMP) $(NODE_STAMP)
	bash .ci/contract-tools

## new-backend-check: `gateway new-backend demo` made, installed in a throwaway venv, tested and
## served (listed, its own operation in /openapi.json and the generated client); leaves no trace
new-backend-check: $(STAMP)
	bash .ci/new-backend

## schemathesis: every check against a live sandbox gateway; SEED and EXAMPLES as in .ci/run
SEED ?= 0
EXAMPLES ?= 25
schemathesis: $(STAMP) compile
	bash .ci/schemathesis $(SEED) $(EXAMPLES)

## lint: what CI checks besides the tests
lint: $(STAMP)
	$(BIN)/ruff check gateway plugins tests bench openapi tools/compile.py
	$(BIN)/ruff format --check gateway plugins tests bench openapi tools/compile.py
	$(BIN)/mypy --strict

format: $(STAMP)
	$(BIN)/ruff check --fix gateway plugins tests bench openapi tools/compile.py
	$(BIN)/ruff format gateway plugins tests bench openapi tools/compile.py

clean:
	test ! -x $(BIN)/python || $(BIN)/python tools/compile.py --clean
	rm -rf $(VENV) .gateway-data .mypy_cache .ruff_cache .pytest_cache build

## bench: the benchmarks (table on stdout, JSON in bench/results/)
bench: $(STAMP) compile bench-tools postgres brokers
	$(BIN)/python -m bench

bench-smoke: $(STAMP) compile bench-tools postgres brokers
	$(BIN)/python -m bench --smoke

# wrk (the load generator), nginx (an upstream that is not the bottleneck) and valgrind (counts
# instructions, which machine noise does not move), from Debian.
bench-tools:
	@command -v wrk >/dev/null && command -v nginx >/dev/null && command -v valgrind >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light valgrind)
