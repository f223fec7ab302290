# The two commands a newcomer needs: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: clients-js-types run test test-compat fuzz lint typecheck fmt migrate run-cluster bench clean lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installs come from the committed, hashed lock files, so every machine and CI run the exact
# versions the suite last passed with; pyproject.toml only bounds what `make lock` may choose.
# requirements.lock is the production set (the Docker image); requirements-dev.lock adds the
# embedded Postgres and the test tools, and serves both `make run` and `make test`.
$(VENV)/.installed-dev: requirements-dev.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# Re-resolve the lock files within pyproject.toml's bounds (every platform and Python the
# project supports, with hashes). Run it after changing a dependency, then `make test`.
UV_VERSION ?= 0.13.9
LOCK_ARGS = --universal --python-version 3.11 --generate-hashes --quiet
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip compile pyproject.toml $(LOCK_ARGS) $(UPGRADE) -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev -c requirements.lock $(LOCK_ARGS) $(UPGRADE) \
		-o requirements-dev.lock

# /demo needs the client bundle; without npm (or offline) the server still starts and /demo
# says which target builds it.
run: $(VENV)/.installed-dev  ## serve on :8080 (embedded Postgres unless DATABASE_URL is set)
	@$(MAKE) --no-print-directory clients/js/dist/.built || \
		echo "the demo's client bundle could not be built: /demo stays off until it is"
	$(BIN)/backchannel serve

run-cluster: $(VENV)/.installed-dev  ## two nodes on :8080 and :8081 sharing REDIS_URL and one Postgres
	BIN=$(BIN) sh scripts/run-cluster.sh

migrate: $(VENV)/.installed-dev
	$(BIN)/backchannel migrate

# The JS client test needs socket.io-client; without npm it is skipped, never faked.
tests/js/node_modules/.installed: tests/js/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tests/js --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the socket.io-client test will be skipped"; fi

# The TypeScript client (clients/js): installed from its lock file and built (ESM, CJS, the
# browser bundle /demo serves, .d.ts). Without npm its tests are skipped, never faked.
clients/js/dist/.built: clients/js/package-lock.json clients/js/src/index.ts clients/js/src/generated.ts
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix clients/js --no-audit --no-fund --loglevel=error && \
		npm run --prefix clients/js build && touch $@; \
	else echo "npm not found: the backchannel-client tests will be skipped"; fi

# Regenerate clients/js/src/generated.ts from the AsyncAPI document after changing an event model.
clients-js-types: $(VENV)/.installed-dev
	PYTHON=$(BIN)/python node clients/js/scripts/generate-types.mjs

test: $(VENV)/.installed-dev tests/js/node_modules/.installed clients/js/dist/.built  ## lint, type-check, run the suite
	$(BIN)/ruff check src tests
	$(BIN)/mypy
	$(BIN)/pytest

# The socket, cluster and room tests on the lowest and the highest allowed python-socketio,
# python-engineio and aiohttp (their own venvs, .venv-compat-*); the rest stays locked.
test-compat: tests/js/node_modules/.installed
	PYTHON=$(PYTHON) sh scripts/test-compat.sh

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
# SCALE=quick runs small sizes in ~3 minutes; SCALE=smoke checks the bench itself (seconds per
# scenario, figures meaningless). Results: bench/results/<timestamp>.{json,md,png} and, with the
# scaling scenario, <timestamp>-scaling.svg. BENCH_SCALING_CPUS=0,1,.. pins its nodes.
SCALE ?= full
bench: $(VENV)/.installed-dev
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	npm ci --prefix bench --no-audit --no-fund --loglevel=error
	cd bench && ../$(BIN)/python run.py --scale $(SCALE)

clean:
	rm -rf $(VENV) .venv-compat-* .pytest_cache .mypy_cache .ruff_cache
