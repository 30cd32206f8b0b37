# The README's two commands are `make run` and `make test`; everything else is a step of them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint format typecheck pytest js-deps install bench bench-search clean lock

run: $(STAMP)
	$(BIN)/agenthub serve

test: $(STAMP) check pytest

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

# Two workers, one test file each: most of the suite waits on real servers and databases.
PYTEST_ARGS ?= -n 2 --dist loadfile

pytest: $(STAMP) js-deps
	$(BIN)/pytest $(PYTEST_ARGS)

# The official JavaScript Socket.IO client and MCP TypeScript SDK, for tests/realtime/test_js_client.py
# and tests/mcp/test_js_client.py (skipped without Node.js unless AGENTHUB_REQUIRE_NODE=1, as in CI),
# and axe-core for the console's accessibility scan.
js-deps:
	@if command -v npm >/dev/null 2>&1; then \
	  { [ -d tests/js/node_modules/socket.io-client ] && [ -d tests/js/node_modules/axe-core ] \
	    && [ -d tests/js/node_modules/@modelcontextprotocol/sdk ]; } \
	    || npm ci --prefix tests/js --no-audit --no-fund --silent; \
	else echo "npm not found: the JavaScript client test will be skipped"; fi

install: $(STAMP)

# The benchmark matrix (needs PostgreSQL at 127.0.0.1:5432); writes docs/BENCHMARKS.md. The seed's
# Node server is compared only when AGENTHUB_NODE_REF names its checkout (then Node.js and npm too).
# Its main generator is bench/js (the official socket.io-client), installed here like tests/js.
bench: $(STAMP)
	[ -d bench/js/node_modules/socket.io-client ] || npm ci --prefix bench/js --no-audit --no-fund --silent
	$(BIN)/python -m bench.matrix $(BENCH_ARGS)

# Search (and inbox) latency on a room of 100,000 messages, PostgreSQL and SQLite (about ten
# minutes); writes its own section of docs/BENCHMARKS.md, which `make bench` keeps.
bench-search: $(STAMP)
	$(BIN)/python -m bench.search_inbox $(BENCH_ARGS)

# A fresh Debian python3 may lack the venv module (python3-venv); virtualenv from pip does the same job.
$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); \
	  $(PYTHON) -m pip install --user --quiet virtualenv 2>/dev/null || \
	  $(PYTHON) -m pip install --user --quiet --break-system-packages virtualenv; \
	  $(PYTHON) -m virtualenv --quiet $(VENV); }

$(STAMP): $(VENV)/bin/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# requirements.lock: every package the container image installs, pinned with hashes, for every
# Python >= 3.11 (markers kept). Rerun after changing pyproject's dependencies; unchanged pins stay.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --group build --universal --python-version 3.11 \
	  --generate-hashes --quiet --custom-compile-command "make lock" -o requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info tests/js/node_modules bench/js/node_modules
