# The two commands that matter: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
JS_STAMP := client_js/node_modules/.installed-stamp
export TEST_POSTGRES_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test

.PHONY: run dev test install lint typecheck pytest jstest bench clean js-build

$(STAMP): pyproject.toml
	@echo "run: creating .venv and installing the project (the first time takes a minute or two)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

$(JS_STAMP): client_js/package.json
	@echo "run: installing client_js's npm packages"
	cd client_js && (npm ci --no-audit --no-fund || npm install --no-audit --no-fund)
	touch $(JS_STAMP)

js-build: $(JS_STAMP)
	cd client_js && npm run --if-present build

run: install js-build
	@echo "run: [1/4] Python environment ready (.venv)"
	@echo "run: [2/4] client_js built"
	@echo "run: [3/4] applying the database migrations and deploying the app's schema"
	@mkdir -p data
	@DEV_MODE=$${DEV_MODE:-1} $(PY) -m backend migrate
	@echo "run: [4/4] starting the server"
	@DEV_MODE=$${DEV_MODE:-1} exec $(PY) -m backend serve

# serve and redeploy on every save (the forgiving dev server: backend/http/dev.py)
dev: install js-build
	mkdir -p data
	DEV_MODE=$${DEV_MODE:-1} exec $(PY) -m backend dev

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

pytest: install $(JS_STAMP)
	$(PY) -m pytest -q

jstest: $(JS_STAMP) install
	cd client_js && npm test

# pytest and the client_js tests run side by side (each starts its own servers; both pass with
# the other core busy), each one's output printed whole when it ends
test: lint typecheck
	$(MAKE) --no-print-directory -j2 --output-sync=target pytest jstest

bench: install
	$(PY) -m benchmarks.bench_engine

clean:
	rm -rf $(VENV) client_js/node_modules
