# The two commands a newcomer needs: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test fuzz lint typecheck fmt migrate run-cluster bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

run: $(VENV)/.installed  ## serve on :8080 (embedded Postgres unless DATABASE_URL is set)
	$(BIN)/backchannel serve

run-cluster: $(VENV)/.installed  ## two nodes on :8080 and :8081 sharing REDIS_URL and one Postgres
	BIN=$(BIN) sh scripts/run-cluster.sh

migrate: $(VENV)/.installed
	$(BIN)/backchannel migrate

# The JS client test needs socket.io-client; without npm it is skipped, never faked.
tests/js/node_modules/.installed: tests/js/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tests/js --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the socket.io-client test will be skipped"; fi

test: $(VENV)/.installed-dev tests/js/node_modules/.installed  ## lint, type-check, run the suite
	$(BIN)/ruff check src tests
	$(BIN)/mypy
	$(BIN)/pytest

# schemathesis over the OpenAPI document, hypothesis over every namespace's events and over
# websocket frames, against a live node (tests/fuzz). `make test` runs the same at FUZZ_EXAMPLES=8.
FUZZ_EXAMPLES ?= 200
FUZZ_HEALTHZ_MS ?= 100
fuzz: $(VENV)/.installed-dev
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_HEALTHZ_MS=$(FUZZ_HEALTHZ_MS) \
		$(BIN)/pytest tests/fuzz -o timeout=3600

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

fmt: $(VENV)/.installed-dev
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

# Backchannel against bare python-socketio and Node socket.io, one run, ~12 minutes on 2 cores.
# SCALE=quick runs small sizes in ~3 minutes. Results: bench/results/<timestamp>.{json,md,png}.
SCALE ?= full
bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	npm ci --prefix bench --no-audit --no-fund --loglevel=error
	cd bench && ../$(BIN)/python run.py --scale $(SCALE)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
